"""wagtail_members: Wagtail pages that publish a shop's membership programme."""
