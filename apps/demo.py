"""Thin launcher of the gennorm demo (the app is gennorm.apps.demo), e.g. for a Hugging Face Space.

    python apps/demo.py --models models --port 7860     # the same as `gennorm demo --models models --port 7860`
"""
import sys

from gennorm.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
