# The reference guide's integration (shared/reference/auth0-integration-guide.md,
# Modules 1-3: Auth0TokenManager, Auth0APIClient, Auth0Manager), as written
# there, with three changes so that it runs against syncbench's emulator:
#   1. requests go to REFERENCE_BASE_URL (plain HTTP on loopback) instead of
#      https://{domain}; the token's audience stays https://{domain}/api/v2/;
#   2. create_employee_account passes a generated password to create_user
#      (the guide sends none with verify_email, which Auth0 refuses for a
#      database connection);
#   3. a driver at the end creates REFERENCE_EMPLOYEES employees one after
#      another, as the guide's endpoint would be called, and prints a JSON line.
# Methods the flow does not call (get_user, update_app_metadata, ...) are left out.

import json
import logging
import os
import secrets
import time
from datetime import datetime
from typing import Dict, List, Optional

import requests

logger = logging.getLogger(__name__)

BASE_URL = os.environ["REFERENCE_BASE_URL"]  # change 1


class Auth0TokenManager:
    """Manage Auth0 access tokens with automatic refresh"""

    def __init__(self, domain: str, client_id: str, client_secret: str):
        self.domain = domain
        self.client_id = client_id
        self.client_secret = client_secret
        self.token: Optional[str] = None
        self.token_expires_at: float = 0
        self.token_type: str = "Bearer"

    def get_access_token(self) -> str:
        current_time = time.time()

        # If token still valid (with 5 minute buffer), return it
        if self.token and current_time < self.token_expires_at:
            logger.debug("Using cached Auth0 token")
            return self.token

        logger.info("Refreshing Auth0 access token")
        self._refresh_token()

        return self.token

    def _refresh_token(self):
        """Refresh access token from Auth0"""
        try:
            response = requests.post(
                f"{BASE_URL}/oauth/token",  # change 1
                json={
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "audience": f"https://{self.domain}/api/v2/",
                    "grant_type": "client_credentials"
                },
                headers={"Content-Type": "application/json"},
                timeout=10
            )

            if response.status_code != 200:
                error_data = response.json()
                raise Exception(
                    f"Token request failed ({response.status_code}): "
                    f"{error_data.get('error_description', 'Unknown error')}"
                )

            data = response.json()
            self.token = data['access_token']
            self.token_type = data.get('token_type', 'Bearer')

            # Set expiry with 5 minute buffer for safety
            expires_in = data['expires_in']
            self.token_expires_at = time.time() + expires_in - 300

            logger.info(
                f"Auth0 token refreshed. Expires in {expires_in} seconds "
                f"({datetime.fromtimestamp(self.token_expires_at).isoformat()})"
            )

        except requests.exceptions.RequestException as e:
            logger.error(f"Token request failed: {str(e)}")
            raise Exception(f"Failed to get Auth0 token: {str(e)}")

    def get_headers(self) -> dict:
        """Get headers with authorization token"""
        token = self.get_access_token()
        return {
            "Authorization": f"{self.token_type} {token}",
            "Content-Type": "application/json"
        }


class Auth0APIClient:
    """Auth0 Management API client"""

    # Max retries for transient failures
    MAX_RETRIES = 3
    RETRY_DELAY = 1  # seconds

    def __init__(self, domain: str, token_manager: Auth0TokenManager):
        self.domain = domain
        self.token_manager = token_manager
        self.base_url = f"{BASE_URL}/api/v2"  # change 1

    def create_user(
        self,
        email: str,
        username: str,
        user_metadata: Dict,
        app_metadata: Dict,
        verify_email: bool = True,
        password: Optional[str] = None
    ) -> Dict:
        if not email or not username:
            return {
                'success': False,
                'message': 'email and username are required'
            }

        payload = {
            "email": email,
            "username": username,
            "user_metadata": user_metadata,
            "app_metadata": app_metadata,
            "connection": "Username-Password-Authentication",
            "verify_email": verify_email,
            "email_verified": not verify_email,
            "blocked": False
        }

        # Only include password if verify_email is False
        if password:
            payload['password'] = password

        try:
            response = self._make_request(
                "POST",
                f"{self.base_url}/users",
                json=payload
            )

            if response.status_code == 201:
                user_data = response.json()
                logger.info(f"User created: {user_data['user_id']}")
                return {
                    'success': True,
                    'user_id': user_data['user_id'],
                    'email': user_data['email'],
                    'created_at': user_data['created_at'],
                    'message': 'User created successfully'
                }

            elif response.status_code == 409:
                logger.warning(f"User already exists: {email}")
                return {
                    'success': False,
                    'message': f'User {email} already exists'
                }

            else:
                error_data = response.json()
                message = error_data.get('message', 'Unknown error')
                logger.error(f"User creation failed ({response.status_code}): {message}")
                return {
                    'success': False,
                    'message': message
                }

        except Exception as e:
            logger.error(f"Exception creating user: {str(e)}")
            return {
                'success': False,
                'message': f'Error: {str(e)}'
            }

    def assign_role(self, user_id: str, role_id: str) -> bool:
        try:
            response = self._make_request(
                "POST",
                f"{self.base_url}/users/{user_id}/roles",
                json={"roles": [role_id]}
            )

            if response.status_code == 204:
                logger.info(f"Role {role_id} assigned to user {user_id}")
                return True
            else:
                logger.error(f"Role assignment failed ({response.status_code})")
                return False

        except Exception as e:
            logger.error(f"Exception assigning role: {str(e)}")
            return False

    def get_roles(self, name_filter: Optional[str] = None) -> List[Dict]:
        params = {}
        if name_filter:
            params['name_filter'] = name_filter

        try:
            response = self._make_request(
                "GET",
                f"{self.base_url}/roles",
                params=params
            )

            if response.status_code == 200:
                return response.json()
            else:
                logger.error(f"Get roles failed ({response.status_code})")
                return []

        except Exception as e:
            logger.error(f"Exception getting roles: {str(e)}")
            return []

    def _make_request(self, method: str, url: str, **kwargs) -> requests.Response:
        headers = self.token_manager.get_headers()
        kwargs['headers'] = headers

        for attempt in range(self.MAX_RETRIES):
            try:
                response = requests.request(method, url, timeout=10, **kwargs)

                # Retry on 429 (rate limit) or 5xx errors
                if response.status_code in [429, 500, 502, 503, 504]:
                    if attempt < self.MAX_RETRIES - 1:
                        wait_time = self.RETRY_DELAY * (2 ** attempt)
                        logger.warning(
                            f"Retry {attempt + 1}/{self.MAX_RETRIES} "
                            f"(status {response.status_code}, wait {wait_time}s)"
                        )
                        time.sleep(wait_time)
                        continue

                return response

            except requests.exceptions.Timeout:
                if attempt < self.MAX_RETRIES - 1:
                    logger.warning(f"Timeout, retrying ({attempt + 1}/{self.MAX_RETRIES})")
                    time.sleep(self.RETRY_DELAY)
                else:
                    raise

        return response


class Auth0Manager:
    """High-level manager for Auth0 integration"""

    def __init__(self, domain: str, client_id: str, client_secret: str):
        self.domain = domain
        self.token_manager = Auth0TokenManager(domain, client_id, client_secret)
        self.api_client = Auth0APIClient(domain, self.token_manager)

    def create_employee_account(self, employee_data: Dict) -> Dict:
        logger.info(f"Creating Auth0 account for employee {employee_data.get('employee_id')}")

        # Validate input
        required_fields = ['employee_id', 'name', 'email', 'department']
        for field in required_fields:
            if not employee_data.get(field):
                return {
                    'success': False,
                    'message': f'Missing required field: {field}'
                }

        # Prepare metadata
        user_metadata = {
            "employee_id": employee_data['employee_id'],
            "full_name": employee_data['name'],
            "department": employee_data['department'],
            "timezone": "America/Chicago",
            "created_at_timestamp": datetime.utcnow().isoformat() + "Z"
        }

        if employee_data.get('phone_number'):
            user_metadata['phone_number'] = employee_data['phone_number']

        app_metadata = {
            "employee_id": employee_data['employee_id'],
            "internal_id": employee_data['employee_id'],
            "department": employee_data['department'],
            "role_code": "associate",
            "created_by": "productivity_system",
            "created_at": datetime.utcnow().isoformat() + "Z",
            "sync_status": "active"
        }

        if employee_data.get('connecteam_id'):
            app_metadata['connecteam_id'] = employee_data['connecteam_id']

        # Create user with email verification
        username = employee_data['email'].split('@')[0]

        result = self.api_client.create_user(
            email=employee_data['email'],
            username=username,
            user_metadata=user_metadata,
            app_metadata=app_metadata,
            verify_email=True,  # Send verification email
            password=secrets.token_urlsafe(18) + "aA1!"  # change 2
        )

        if not result['success']:
            logger.error(f"User creation failed: {result['message']}")
            return result

        user_id = result['user_id']

        # Assign default role
        role_assigned = self._assign_default_role(user_id)

        result['auth0_email_verified'] = False
        result['role_assigned'] = role_assigned
        result['message'] = 'Account created. Verification email sent.'

        logger.info(
            f"Auth0 account created successfully",
            extra={
                'employee_id': employee_data['employee_id'],
                'auth0_user_id': user_id,
                'email': employee_data['email']
            }
        )

        return result

    def _assign_default_role(self, user_id: str) -> bool:
        """Assign production_associate role to new user"""
        try:
            roles = self.api_client.get_roles(name_filter='production_associate')

            if not roles:
                logger.warning(f"production_associate role not found")
                return False

            role_id = roles[0]['id']
            success = self.api_client.assign_role(user_id, role_id)

            if success:
                logger.info(f"Default role assigned to {user_id}")

            return success

        except Exception as e:
            logger.error(f"Exception assigning role: {str(e)}")
            return False


# change 3: the driver. The employees are the backfill's rows
# (cmd/syncbench/backfill.go, insertEmployees).
def main():
    n = int(os.environ["REFERENCE_EMPLOYEES"])
    manager = Auth0Manager(os.environ["REFERENCE_DOMAIN"], os.environ["REFERENCE_CLIENT_ID"],
                           os.environ["REFERENCE_CLIENT_SECRET"])
    departments = ['Production', 'Shipping', 'Quality', 'Maintenance']
    created = roles = failed = 0
    first_error = ""
    start = time.perf_counter()
    for g in range(1, n + 1):
        result = manager.create_employee_account({
            'employee_id': g,
            'name': f'Backfill {g}',
            'email': f'backfill-{g}@bench.example',
            'department': departments[g % 4],
            'phone_number': '+1555' + str(g).zfill(7),
            'connecteam_id': f'ct-{g}',
        })
        if result.get('success'):
            created += 1
            if result.get('role_assigned'):
                roles += 1
        else:
            failed += 1
            first_error = first_error or result.get('message', '')
    seconds = time.perf_counter() - start
    print(json.dumps({"created": created, "roles_assigned": roles, "failed": failed,
                      "seconds": seconds, "first_error": first_error}))


if __name__ == "__main__":
    main()
