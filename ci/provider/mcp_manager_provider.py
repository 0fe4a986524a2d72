# app/providers/mcp_manager_provider.py

import os
import httpx
from typing import Dict, Optional
from datetime import datetime, timedelta

class McpManagerCredentialProvider:
    def __init__(self):
        self.api_url = os.getenv("MCP_API_URL")
        self.token = os.getenv("MCP_TOKEN")
        self.lease_id = None
        self.credentials = {}
        self.expires_at = None

    async def bootstrap(self, services: list[str]):
        """Initialize and get initial lease"""
        async with httpx.AsyncClient() as client:
            # Authenticate
            me_response = await client.get(
                f"{self.api_url}/api/mcp/me",
                headers={"Authorization": f"Bearer {self.token}"}
            )
            me_response.raise_for_status()

            # Request lease
            lease_response = await client.post(
                f"{self.api_url}/api/mcp/credentials/lease",
                headers={"Authorization": f"Bearer {self.token}"},
                json={
                    "services": services,
                    "ttl": 3600,
                    "server_id": "mcp-server-1"
                }
            )
            lease_response.raise_for_status()

            data = lease_response.json()
            self.lease_id = data["lease_id"]
            self.credentials = data["credentials"]
            self.expires_at = datetime.fromisoformat(data["expires_at"])

    async def get_credentials(self, service: str) -> Optional[Dict]:
        """Get credentials for a service"""
        # Auto-refresh if expiring soon (< 10 min)
        if self.expires_at and (self.expires_at - datetime.now()) < timedelta(minutes=10):
            await self.refresh()

        return self.credentials.get(service)

    async def refresh(self):
        """Refresh the lease"""
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{self.api_url}/api/mcp/credentials/lease/{self.lease_id}/renew",
                headers={"Authorization": f"Bearer {self.token}"}
            )
            response.raise_for_status()

            data = response.json()
            self.expires_at = datetime.fromisoformat(data["expires_at"])
