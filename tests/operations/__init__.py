"""What is done to pairs (runner/operations): detach, attribute updates, vector-store files and
file batches."""
