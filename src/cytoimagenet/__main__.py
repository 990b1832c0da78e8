"""``python -m cytoimagenet``: the same as the ``cytoimagenet`` command."""

from cytoimagenet.cli import main

if __name__ == "__main__":
    main()
