"""vector_sets.py — the test vector folders a differential test reads: the
ones the build generates (--vectors, written by tests/vectors/make_vectors.py)
and, as extra cases, DIR/vectors of --shared DIR when that folder exists."""
import os


def add_arguments(ap):
    ap.add_argument("--vectors", required=True, help="the generated test vectors")
    ap.add_argument("--shared", help="a folder whose vectors/ are checked too, when present")


def roots(args):
    dirs = [args.vectors]
    if args.shared and os.path.isdir(os.path.join(args.shared, "vectors")):
        dirs.append(os.path.join(args.shared, "vectors"))
    return dirs
