"""The MLflow tracking server and who may use it: the client the platform connects with (its login,
errors that name the server), the embedded server's process, the accounts and their permissions, and
the guard in front of MLflow's basic-auth app.

Kept free of imports: the MLflow image installs this package without its dependencies for the guard.
"""
