/**
 * A plain POST form to the edge's sign-out: it works without JavaScript, is a real button for
 * keyboards and screen readers, and `form-action 'self'` allows it. The edge signs out only a POST
 * whose Origin (and Sec-Fetch-Site) the browser set for this site, which a form on our own page
 * gets and another site cannot forge; it then sends the browser on to the provider's logout, which
 * is why this is a top-level form submission and not a fetch.
 */
export function SignOutButton() {
  return (
    <form method="post" action="/oauth2/sign_out" className="sign-out">
      <button type="submit" className="button button-secondary">
        Sign out
      </button>
    </form>
  );
}
