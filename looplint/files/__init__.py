"""Files in: finding the files to check, reading them (notebooks included) and deciding cheaply
which ones can matter before anything is parsed.

This is the lowest layer of the engine: it knows bytes, paths and notebook cells, and nothing
of rules, settings or output.
"""
