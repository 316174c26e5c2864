"""Options-pricing MLOps pipeline: one module per task, shared runtime, market sources and quant code."""
