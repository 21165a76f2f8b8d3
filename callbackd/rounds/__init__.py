"""Weekly rounds (回访批次): surveys, sampling and its verification, the calling policy."""
