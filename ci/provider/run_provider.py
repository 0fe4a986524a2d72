"""Runs the guide's McpManagerCredentialProvider, unchanged, against a seeded server.

mcp_manager_provider.py beside this file is the class from the guide, verbatim. This driver only
calls it the way the guide's startup code does (bootstrap the five services, then refresh) and
checks what came back. Exits non-zero on any failure.
"""

import asyncio
import sys
from datetime import datetime, timezone

from mcp_manager_provider import McpManagerCredentialProvider

SERVICES = ["todoist", "jira", "notion", "openai", "sentry"]


async def main() -> int:
    provider = McpManagerCredentialProvider()
    await provider.bootstrap(SERVICES)
    assert provider.lease_id and provider.lease_id.startswith("lse_"), provider.lease_id
    assert sorted(provider.credentials) == sorted(SERVICES), provider.credentials.keys()
    assert provider.credentials["jira"]["url"] == "https://dev-team.atlassian.net"
    assert provider.credentials["jira"]["cloud"] is True
    assert provider.expires_at.tzinfo is not None, "expires_at must carry its UTC offset"

    first_expiry = provider.expires_at
    await provider.refresh()
    assert provider.expires_at >= first_expiry, (first_expiry, provider.expires_at)

    # The guide's get_credentials subtracts a naive datetime.now() from this aware timestamp,
    # which raises TypeError (see README); its one-line fix is datetime.now(timezone.utc).
    try:
        await provider.get_credentials("todoist")
        print("note: get_credentials did not raise; the client bug may be fixed upstream")
    except TypeError:
        remaining = provider.expires_at - datetime.now(timezone.utc)
        assert remaining.total_seconds() > 3000, remaining

    print(f"provider ok: lease {provider.lease_id[:12]}…, {len(provider.credentials)} services, "
          f"expires {provider.expires_at.isoformat()}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
