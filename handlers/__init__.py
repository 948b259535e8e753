"""Automations, one module each. `spacehooks serve` imports every module here.

A module registers its handlers with `@on(...)` / `@schedule(...)` from `server`, or with its own
module-level `router = Router()`. The built-in automations below are off unless their switch
variable is set; their variables are validated at start (see `server.automations`), and each
module's docstring is its reference:

- `gpu_on_update`: a commit to a dataset puts a training Space on GPU until it reports done;
- `endpoint_follows_model`: an Inference Endpoint follows a model's branch, with rollback;
- `space_pr_previews`: a private preview Space for each pull request on a Space;
- `instances_on_schedule`: a dedicated LLM instance on office hours;
- `audit_to_dataset`: the audit log of all of them, pushed to a dataset.
"""
