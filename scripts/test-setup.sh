#!/usr/bin/env bash
# What the test suite needs beyond the Python packages: nothing yet beyond services.
set -eu
