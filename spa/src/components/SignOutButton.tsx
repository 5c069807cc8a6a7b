import { localPath } from "../session";

/**
 * A plain GET form to oauth2-proxy's sign-out endpoint: it works without JavaScript, is a real
 * button for keyboards and screen readers, and `form-action 'self'` allows it.
 */
export function SignOutButton({ returnTo = "/" }: { returnTo?: string }) {
  return (
    <form method="get" action="/oauth2/sign_out" className="sign-out">
      <input type="hidden" name="rd" value={localPath(returnTo)} />
      <button type="submit" className="button button-secondary">
        Sign out
      </button>
    </form>
  );
}
