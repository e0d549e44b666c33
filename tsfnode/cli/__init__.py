"""The `tsfnode` command line: each sub-command's parser and its handler."""
