"""The smoke test's SRP sign-in derives the key the server derives (SRP-6a, the server side
written out here from the verifier v = g^x), and a wrong password derives another key."""

import secrets
import unittest

from smoke import SRP_G, SRP_N, _hash_hex, _hkdf16, _pad_hex, srp_session_key, srp_x


def server_key(a_public, v, b):
    """What the server computes: B = k v + g^b, S = (A v^u)^b, then the same HKDF."""
    k = int(_hash_hex(_pad_hex(SRP_N) + _pad_hex(SRP_G)), 16)
    big_b = (k * v + pow(SRP_G, b, SRP_N)) % SRP_N
    u = int(_hash_hex(_pad_hex(a_public) + _pad_hex(big_b)), 16)
    s = pow(a_public * pow(v, u, SRP_N) % SRP_N, b, SRP_N)
    return big_b, _hkdf16(bytes.fromhex(_pad_hex(s)), bytes.fromhex(_pad_hex(u)))


class SrpSignIn(unittest.TestCase):
    def test_client_and_server_derive_the_same_key(self):
        salt = secrets.token_hex(16)
        v = pow(SRP_G, srp_x(salt, "AbCdEf123", "user-id", "Right-Password-1"), SRP_N)
        for _ in range(3):
            a, b = secrets.randbits(256), secrets.randbits(256)
            big_b, expected = server_key(pow(SRP_G, a, SRP_N), v, b)
            key = srp_session_key(a, big_b, salt, "AbCdEf123", "user-id", "Right-Password-1")
            self.assertEqual(key, expected)
            wrong = srp_session_key(a, big_b, salt, "AbCdEf123", "user-id", "Wrong-Password-1")
            self.assertNotEqual(wrong, expected)

    def test_the_group_is_the_rfc_3526_3072_bit_prime(self):
        self.assertEqual(SRP_N.bit_length(), 3072)
        # The prime's own checksum: its leading and trailing 64 bits are all ones.
        self.assertEqual(SRP_N >> 3008, 2**64 - 1)
        self.assertEqual(SRP_N & (2**64 - 1), 2**64 - 1)
        # A safe prime: N and (N - 1) / 2 both pass Fermat tests (a mistyped digit would not).
        for witness in (3, 5, 7):
            self.assertEqual(pow(witness, SRP_N - 1, SRP_N), 1)
            q = (SRP_N - 1) // 2
            self.assertEqual(pow(witness, q - 1, q), 1)


if __name__ == "__main__":
    unittest.main()
