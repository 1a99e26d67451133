"""Using trained models: full-ranking evaluation, recommendations for histories, paired statistics
between runs, and the HTML report."""
