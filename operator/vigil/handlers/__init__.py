"""kopf registration only: thin functions that hand each ModelDeployment to the reconciler."""
