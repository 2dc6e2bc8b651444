"""Esper agents: behavior policies, data generation, offline and online training, evaluation."""
