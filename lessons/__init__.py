"""The lessons (`NN_topic.py`, run as scripts or opened as notebooks) and what serves only them.

A package so that `lessons.support` is found from the repository root, which every lesson puts
on `sys.path` before it imports anything; the library (`minims`) never imports from here.
"""
