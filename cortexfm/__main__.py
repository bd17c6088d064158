"""``python -m cortexfm`` (also what ``torchrun -m cortexfm`` runs)."""

from cortexfm.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
