"""The Streamlit app (app.py: UI only; app_data.py: what it reads): a people-facing tool on
the registry, the evaluation baselines and the pricing service, in the operations layer
(.importlinter)."""
