#!/bin/sh
# Runs a command, merges its stderr into stdout, and prints "exit=<code>" last, so that ctest's
# PASS_REGULAR_EXPRESSION can check both the message and the exit code.
"$@" 2>&1
echo "exit=$?"
