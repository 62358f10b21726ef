"""`python -m looplint`."""

from looplint.commands.cli import main

if __name__ == "__main__":
    main()
