"""Supply-chain verification of images: the registry reader, the evidence, the verdict, the gate."""
