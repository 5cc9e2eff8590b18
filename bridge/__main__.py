"""`python -m bridge` runs the same command line as `indiebridge`."""

from bridge.cli import main

if __name__ == "__main__":
    main()
