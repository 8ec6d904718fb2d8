"""Browser tests: the studio served by `tinystudio studio`, driven with Playwright in Debian's Chromium."""
