// Starts Swagger UI on /docs (verify_api/docs.py) with the served OpenAPI document.
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});
