"""How the API's authentication schemes appear in the OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class OvhSignatureScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.OvhSignatureAuthentication"
    name = "ovhSignature"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-Ovh-Signature",
            "description": (
                "OVH request signing: X-Ovh-Application, X-Ovh-Consumer, X-Ovh-Timestamp and "
                'X-Ovh-Signature = "$1$" + sha1(secret+"+"+consumerKey+"+"+METHOD+"+"+fullURL+"+"+body+"+"+timestamp).'
            ),
        }


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}
