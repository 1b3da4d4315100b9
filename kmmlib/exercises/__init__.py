"""Exercises: checks with clear messages (:mod:`.check`) and the student-version generator
(:mod:`.release`). Solutions in ``exercises/solutions/`` are the source."""

from kmmlib.exercises.check import ExerciseFailed, answer, check_equal, check_function

__all__ = ["ExerciseFailed", "answer", "check_equal", "check_function"]
