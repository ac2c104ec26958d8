"""Thin launcher of the gennorm demo (the app is gennorm.apps.demo), e.g. for a Hugging Face Space.

    python apps/demo.py --models models --port 7860     # the same as `gennorm demo`
"""
from gennorm.apps.demo import main

if __name__ == "__main__":
    main()
