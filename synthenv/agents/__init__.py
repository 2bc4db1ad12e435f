"""Agents and baselines: PPO training (stable-baselines3), search baselines (random search, hill
climbing, CMA-ES), evaluation at equal render budgets, and matching recordings.

Nothing here is imported by the env core; these modules need the ``train`` extra.
"""
