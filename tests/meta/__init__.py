"""Tests of the repository itself: stage bookkeeping and exercises (not of a stage)."""
