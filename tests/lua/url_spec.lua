-- corio.url on libcurl's URL API, fetch's `params`, and what fetch's URL
-- errors say.
describe("corio.url", function()
  it("parse gives the parts, nil when absent, the port as a number", function()
    local u = corio.url.parse("https://me:pw@Example.com:8443/a/b%20c?x=1&y=2#top")
    assert.same({href = "https://me:pw@Example.com:8443/a/b%20c?x=1&y=2#top",
      scheme = "https", user = "me", password = "pw", host = "Example.com",
      port = 8443, path = "/a/b%20c", query = "x=1&y=2", fragment = "top"}, u)
    u = corio.url.parse("http://[::1]/")
    assert.same({href = "http://[::1]/", scheme = "http", host = "[::1]", path = "/"}, u)
  end)

  it("parse names the function, the URL and libcurl's reason", function()
    local ok, err = pcall(corio.url.parse, "http://h:99999/")
    assert.is_false(ok)
    assert.equal("corio.url.parse: invalid URL 'http://h:99999/': Port number " ..
      "was not a decimal number between 0 and 65535", err)
    ok, err = pcall(corio.url.parse, 42)
    assert.equal("corio.url.parse: the URL must be a string (got number)", err)
  end)

  it("join resolves as RFC 3986 section 5.4 does", function()
    local base = "http://a/b/c/d;p?q"
    for ref, want in pairs{g = "http://a/b/c/g", ["./g"] = "http://a/b/c/g",
        ["/g"] = "http://a/g", ["?y"] = "http://a/b/c/d;p?y",
        ["#s"] = "http://a/b/c/d;p?q#s", [""] = "http://a/b/c/d;p?q",
        [".."] = "http://a/b/", ["../../../g"] = "http://a/g",
        ["g;x?y#s"] = "http://a/b/c/g;x?y#s", ["g/../h"] = "http://a/b/c/h",
        ["//g/x"] = "http://g/x", ["https://z/"] = "https://z/"} do
      assert.equal(want, corio.url.join(base, ref), ref)
    end
    local ok, err = pcall(corio.url.join, base, "g:h")
    assert.is_false(ok) -- libcurl wants scheme://
    assert.matches("^corio.url.join: cannot resolve 'g:h' against 'http://a/b/c/d;p%?q': ", err)
    ok, err = pcall(corio.url.join, "nope", "g")
    assert.matches("^corio.url.join: invalid URL 'nope': ", err)
  end)

  it("encode and decode are each other's inverse, lists repeating a key", function()
    local q = corio.url.encode{q = "a b&c=d", page = 2, tag = {"x", "é"}}
    assert.equal("page=2&q=a+b%26c%3Dd&tag=x&tag=%C3%A9", q)
    assert.same({q = "a b&c=d", page = "2", tag = {"x", "é"}}, corio.url.decode(q))
    assert.same({a = "1", flag = ""}, corio.url.decode("?a=1&flag"))
    local ok, err = pcall(corio.url.encode, {x = {}, [1] = 2})
    assert.equal("corio.url.encode: keys must be strings (got number)", err)
    ok, err = pcall(corio.url.encode, {x = print})
    assert.matches("^corio.url.encode: the value of 'x' must be a string, number, boolean", err)
    ok, err = pcall(corio.url.decode, nil)
    assert.equal("corio.url.decode: expected a string (got nil)", err)
  end)
end)

describe("fetch and URLs", function()
  local srv
  setup(function()
    srv = corio.serve{port = 0, handler = function(req)
      return {json = {query = req.query_string, path = req.path}}
    end}
  end)
  teardown(function() srv:close() end)

  it("params are encoded into the query, after what the URL has", function()
    local r = corio.get(srv.url .. "/p?z=0#frag", {params = {q = "a b", page = 2}})
    assert.equal("z=0&page=2&q=a+b", r:json().query)
    r = corio.get(srv.url .. "/p", {params = {tag = {"x", "y"}}})
    assert.equal("tag=x&tag=y", r:json().query)
    local ok, err = pcall(corio.get, srv.url, {params = "q=1"})
    assert.equal("corio.get: option 'params' must be a table, not a string", err)
    ok, err = pcall(corio.get, srv.url, {params = {q = print}})
    assert.matches("^corio.get: option 'params': the value of 'q' must be", err)
  end)

  it("invalid_url carries the URL and the reason; too_large states the limit", function()
    local ok, err = pcall(corio.fetch, "http://h:99999/")
    assert.is_false(ok)
    assert.equal("invalid_url", err.kind)
    assert.equal("http://h:99999/", err.url)
    assert.matches("invalid URL 'http://h:99999/': Port number", err.message)
    ok, err = pcall(corio.fetch, "ftp://x/")
    assert.equal("unsupported_scheme", err.kind)
    assert.equal("unsupported URL scheme in 'ftp://x/' (corio fetches http and https)", err.message)
    ok, err = pcall(corio.get, srv.url .. "/long-enough-path", {max_body = 10})
    assert.equal("too_large", err.kind)
    assert.equal("response body larger than max_body (10 bytes)", err.message)
  end)
end)
