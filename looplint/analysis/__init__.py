"""What a module's training code does, decided from its syntax: the analysis layer.

Layers, each importing only those above it in this list:

* `syntax`, `imports`: LibCST helpers and the module's own import aliases;
* `program`: each function compiled to events in execution order;
* `catalog`: library spellings of optimizers, schedulers and scalers;
* `operations`: the resolved vocabulary rules read (steps, clears, backward passes);
* `summary`: module-wide textual facts;
* `scopes`: which variable or attribute a name means inside a function (identities);
* `parameters`: what an optimizer updates (the parameters its construction is given);
* `recognition`, `evidence`: what each identity holds — optimizer, scheduler, scaler —
  and the evidence it was recognised by;
* `linking`: calls into other modules of the codebase and what this module passes them;
* `trees`: each function's events resolved to operations, same-module calls inlined;
* `networks`: the module's own `nn.Module` classes and the models it loads pretrained;
* `sampling`: DDP, data loaders and the samplers they are given;
* `facts`: `ModuleFacts`, the one object rules query;
* `project`: the checked codebase as importable modules, building `ModuleFacts` on demand.

Nothing here reads configuration, caches results or reports: that is the engine's job.
"""
