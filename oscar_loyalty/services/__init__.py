"""Every write of the loyalty programme goes through this package."""
