"""Task modules: one per concern, each exporting ``ns`` (a Collection) or tasks.

Task bodies stay thin: they resolve hosts, call pure planners/command builders
from the modules one level up, run the commands, and print results.
"""
