"""What only the lessons use, kept out of the library (minGPT keeps its demos' helpers with them).

- `exercises.py`: a checker for every exercise ("NN.i"), and the scaffolding some exercises need;
- `figures.py`: the lessons' figures, saved under out/lessons/ and shown inline in a notebook;
- `comparison.py`: the same-budget training runs lessons 08-10 set side by side.

They import `minims` like any user's code does; nothing in `minims` imports them.
"""
