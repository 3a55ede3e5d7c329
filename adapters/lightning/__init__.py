"""Lightning payment rails: LND over REST and the dev rail."""
