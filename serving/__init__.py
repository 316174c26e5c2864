"""BentoML pricing service and Streamlit app (built by the serving issue)."""
