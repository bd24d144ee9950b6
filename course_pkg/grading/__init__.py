"""Grading helpers for the nbgrader assignments and the instructor pipeline."""
