"""`python -m kawa.cli`: the kawa command line."""

from kawa.cli import main

main()
