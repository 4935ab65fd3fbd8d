//! Reading our pages in tests.

/// The value of a hidden form field, e.g. `csrf`.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in page:\n{html}"))
        + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// GETs a page with a form and returns its HTML (asserting 200).
pub async fn form_page(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.expect("GET a form page");
    assert_eq!(response.status(), 200, "GET {url}");
    response.text().await.expect("body")
}
