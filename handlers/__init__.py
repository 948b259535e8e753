"""Automations, one module each. `spacehooks serve` imports every module here.

A module registers its handlers with `@on(...)` from `server`, or with its own module-level
`router = Router()`. The built-in automations arrive in later changes; each is off unless its
environment variables configure it.
"""
