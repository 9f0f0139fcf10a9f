"""Fake Microsoft Graph tenant, fake Learnster SCIM service and an organisation generator."""
