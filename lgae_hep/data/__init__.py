"""Jet readers (NanoAOD/PFNano, JetNet HDF5), tensors, and the Pythia 8 + FastJet generator."""
