"""`python -m kawa`: the kawa command line."""

from kawa.cli import main

main()
