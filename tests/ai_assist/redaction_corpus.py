# ruff: noqa: E501 - data file: snippets stay on one line each
"""Labelled redaction corpus: (kind, snippet, values that must not survive redaction).

Generated once with a fixed seed (formats chosen by hand); card numbers are Luhn-valid and IBANs carry valid
check digits. `NAMES` are the configured names; `NEGATIVES` must pass through unchanged.
"""

NAMES = ["Dana Smith", "Jörg Müller", "Priya Raman", "Chen Wei", "Aoife O'Connor", "Lukas Novak"]

CORPUS = [
    ("email", "Expected OK, got 500 while calling with dana.smith0@EXAMPLE.ORG", ["dana.smith0@EXAMPLE.ORG"]),
    ("email", "Customer data in the log: o'brien1@example.com; please scrub.", ["o'brien1@example.com"]),
    ("email", "Contact ADMIN2@corp-mail.example.io about the flaky checkout test", ["ADMIN2@corp-mail.example.io"]),
    (
        "email",
        "Expected OK, got 500 while calling with first_last3@sub.dom.example.net",
        ["first_last3@sub.dom.example.net"],
    ),
    ("email", "dana.smith4@sub.dom.example.net", ["dana.smith4@sub.dom.example.net"]),
    ("email", "dana.smith5@example.com", ["dana.smith5@example.com"]),
    ("email", "Contact ADMIN6@sub.dom.example.net about the flaky checkout test", ["ADMIN6@sub.dom.example.net"]),
    ("email", "Customer data in the log: o'brien7@EXAMPLE.ORG; please scrub.", ["o'brien7@EXAMPLE.ORG"]),
    ("email", "Repro steps sent by x8@mail.example.co.uk yesterday.", ["x8@mail.example.co.uk"]),
    ("email", "Repro steps sent by x9@EXAMPLE.ORG yesterday.", ["x9@EXAMPLE.ORG"]),
    ("email", "Expected OK, got 500 while calling with dana.smith10@EXAMPLE.ORG", ["dana.smith10@EXAMPLE.ORG"]),
    (
        "email",
        "Contact tester-4211@corp-mail.example.io about the flaky checkout test",
        ["tester-4211@corp-mail.example.io"],
    ),
    ("email", "see notes: ops.team12@mail.example.co.uk (from the support ticket)", ["ops.team12@mail.example.co.uk"]),
    (
        "email",
        "see notes: tester-4213@corp-mail.example.io (from the support ticket)",
        ["tester-4213@corp-mail.example.io"],
    ),
    ("email", "see notes: ops.team14@example.com (from the support ticket)", ["ops.team14@example.com"]),
    (
        "email",
        "Contact first_last15@corp-mail.example.io about the flaky checkout test",
        ["first_last15@corp-mail.example.io"],
    ),
    ("email", "Customer data in the log: j.doe+qa16@example.com; please scrub.", ["j.doe+qa16@example.com"]),
    ("email", "Repro steps sent by ADMIN17@sub.dom.example.net yesterday.", ["ADMIN17@sub.dom.example.net"]),
    (
        "email",
        "Expected OK, got 500 while calling with ops.team18@mail.example.co.uk",
        ["ops.team18@mail.example.co.uk"],
    ),
    ("email", "Login failed for first_last19@example.com after the upgrade", ["first_last19@example.com"]),
    ("email", "Repro steps sent by ADMIN20@example.com yesterday.", ["ADMIN20@example.com"]),
    ("email", "Repro steps sent by j.doe+qa21@EXAMPLE.ORG yesterday.", ["j.doe+qa21@EXAMPLE.ORG"]),
    (
        "email",
        "Customer data in the log: first_last22@corp-mail.example.io; please scrub.",
        ["first_last22@corp-mail.example.io"],
    ),
    ("email", "see notes: j.doe+qa23@mail.example.co.uk (from the support ticket)", ["j.doe+qa23@mail.example.co.uk"]),
    ("email", "Expected OK, got 500 while calling with x24@corp-mail.example.io", ["x24@corp-mail.example.io"]),
    ("email", "Login failed for ops.team25@sub.dom.example.net after the upgrade", ["ops.team25@sub.dom.example.net"]),
    ("phone", "Contact phone +44 20 7946 0908 about the flaky checkout test", ["+44 20 7946 0908"]),
    ("phone", "Reporter: phone +1-415-555-9719", ["+1-415-555-9719"]),
    ("phone", "Expected OK, got 500 while calling with phone (415) 555-3729", ["(415) 555-3729"]),
    ("phone", "Repro steps sent by phone 415.555.4635 yesterday.", ["415.555.4635"]),
    ("phone", "Login failed for phone +49 30 12341840 after the upgrade", ["+49 30 12341840"]),
    ("phone", "see notes: phone 030 1234 7069 (from the support ticket)", ["030 1234 7069"]),
    ("phone", "see notes: phone +33 1 23 45 31 89 (from the support ticket)", ["+33 1 23 45 31 89"]),
    ("phone", "Repro steps sent by phone +1 (212) 555-0916 yesterday.", ["+1 (212) 555-0916"]),
    ("phone", "Login failed for phone +31 6 1234 9342 after the upgrade", ["+31 6 1234 9342"]),
    ("phone", "Login failed for phone 020-7946-0738 after the upgrade", ["020-7946-0738"]),
    ("phone", "Expected OK, got 500 while calling with phone +44 20 7946 0208", ["+44 20 7946 0208"]),
    ("phone", "Contact phone +1-415-555-8192 about the flaky checkout test", ["+1-415-555-8192"]),
    ("phone", "Login failed for phone (415) 555-0722 after the upgrade", ["(415) 555-0722"]),
    ("phone", "see notes: phone 415.555.4983 (from the support ticket)", ["415.555.4983"]),
    ("phone", "Repro steps sent by phone +49 30 12344614 yesterday.", ["+49 30 12344614"]),
    ("phone", "Repro steps sent by phone 030 1234 9524 yesterday.", ["030 1234 9524"]),
    ("phone", "Contact phone +33 1 23 45 42 89 about the flaky checkout test", ["+33 1 23 45 42 89"]),
    ("phone", "see notes: phone +1 (212) 555-0707 (from the support ticket)", ["+1 (212) 555-0707"]),
    ("phone", "Customer data in the log: phone +31 6 1234 7735; please scrub.", ["+31 6 1234 7735"]),
    ("phone", "see notes: phone 020-7946-2700 (from the support ticket)", ["020-7946-2700"]),
    ("phone", "Repro steps sent by phone +44 20 7946 8781 yesterday.", ["+44 20 7946 8781"]),
    ("phone", "Customer data in the log: phone +1-415-555-6905; please scrub.", ["+1-415-555-6905"]),
    ("phone", "Expected OK, got 500 while calling with phone (415) 555-6998", ["(415) 555-6998"]),
    ("phone", "Customer data in the log: phone 415.555.8142; please scrub.", ["415.555.8142"]),
    ("phone", "Repro steps sent by phone +49 30 12347638 yesterday.", ["+49 30 12347638"]),
    ("phone", "Login failed for phone 030 1234 9515 after the upgrade", ["030 1234 9515"]),
    ("ip", "Contact client 203.216.231.171 about the flaky checkout test", ["203.216.231.171"]),
    ("ip", "Contact client 188.96.201.226 about the flaky checkout test", ["188.96.201.226"]),
    ("ip", "Login failed for client 7.171.90.241 after the upgrade", ["7.171.90.241"]),
    ("ip", "Reporter: client 101.147.204.113", ["101.147.204.113"]),
    ("ip", "client 108.41.142.99", ["108.41.142.99"]),
    ("ip", "see notes: client 90.175.146.45 (from the support ticket)", ["90.175.146.45"]),
    ("ip", "client 132.132.35.127", ["132.132.35.127"]),
    ("ip", "Customer data in the log: client 82.15.190.176; please scrub.", ["82.15.190.176"]),
    ("ip", "Expected OK, got 500 while calling with client 149.63.126.212", ["149.63.126.212"]),
    ("ip", "Repro steps sent by client 190.202.98.238 yesterday.", ["190.202.98.238"]),
    ("ip", "see notes: client 113.168.151.204 (from the support ticket)", ["113.168.151.204"]),
    ("ip", "Login failed for client 84.6.83.119 after the upgrade", ["84.6.83.119"]),
    ("ip", "Reporter: client 32.225.140.183", ["32.225.140.183"]),
    ("ip", "client 158.67.123.190", ["158.67.123.190"]),
    ("ip", "Contact from [2001:db8::8a2e:370:7334] about the flaky checkout test", ["2001:db8::8a2e:370:7334"]),
    ("ip", "Customer data in the log: from [fe80::1ff:fe23:4567:890a]; please scrub.", ["fe80::1ff:fe23:4567:890a"]),
    (
        "ip",
        "Login failed for from [2001:0db8:85a3:0000:0000:8a2e:0370:7334] after the upgrade",
        ["2001:0db8:85a3:0000:0000:8a2e:0370:7334"],
    ),
    ("ip", "Reporter: from [::ffff:10.0.0.7]", ["::ffff:10.0.0.7"]),
    ("ip", "Login failed for from [2a00:1450:4001:82b::200e] after the upgrade", ["2a00:1450:4001:82b::200e"]),
    ("ip", "from [fd12:3456:789a:1::1]", ["fd12:3456:789a:1::1"]),
    ("ip", "Expected OK, got 500 while calling with from [2001:db8:0:0:1:0:0:1]", ["2001:db8:0:0:1:0:0:1"]),
    ("ip", "Repro steps sent by from [fe80::1%eth0] yesterday.", ["fe80::1"]),
    ("ip", "Repro steps sent by from [2600:1f18:abcd::42] yesterday.", ["2600:1f18:abcd::42"]),
    ("ip", "Login failed for from [2001:db8::1] after the upgrade", ["2001:db8::1"]),
    ("ip", "Contact from [2400:cb00:2048:1::c629:d7a2] about the flaky checkout test", ["2400:cb00:2048:1::c629:d7a2"]),
    ("ip", "Repro steps sent by from [2001:db8:aaaa::99] yesterday.", ["2001:db8:aaaa::99"]),
    (
        "api_key",
        "see notes: sk-M1YvSOmqFiQmA5eJyQ90igFSNWEnz91eO9joovm4gfnvE0rG (from the support ticket)",
        ["sk-M1YvSOmqFiQmA5eJyQ90igFSNWEnz91eO9joovm4gfnvE0rG"],
    ),
    (
        "api_key",
        "see notes: sk-RV3XM4Z4U2htVAZDVxGm5frKvHxBj3OIgKfdvGHnaZoxd38P (from the support ticket)",
        ["sk-RV3XM4Z4U2htVAZDVxGm5frKvHxBj3OIgKfdvGHnaZoxd38P"],
    ),
    (
        "api_key",
        "Repro steps sent by sk-qaMtn5C3FxaL7kZdwgKPvWOfHc6HwgG1BnPvDkPpyjEodN6y yesterday.",
        ["sk-qaMtn5C3FxaL7kZdwgKPvWOfHc6HwgG1BnPvDkPpyjEodN6y"],
    ),
    (
        "api_key",
        "Reporter: sk-QVP9wx4ldB3ZQlFr3WZ1dqYO28s0iMRZEYpP0YYPpkFy5YV0",
        ["sk-QVP9wx4ldB3ZQlFr3WZ1dqYO28s0iMRZEYpP0YYPpkFy5YV0"],
    ),
    (
        "api_key",
        "see notes: sk-CspAw2PKEhaqvhZXWQFIIIPtYJPE5tWrXaxztNFRl89ODivV (from the support ticket)",
        ["sk-CspAw2PKEhaqvhZXWQFIIIPtYJPE5tWrXaxztNFRl89ODivV"],
    ),
    (
        "api_key",
        "Expected OK, got 500 while calling with sk-4Q88bw9ykwS2v6km97eVQArzOzCx2NEv3Np3BGthcxOq6csR",
        ["sk-4Q88bw9ykwS2v6km97eVQArzOzCx2NEv3Np3BGthcxOq6csR"],
    ),
    (
        "api_key",
        "sk-proj-FAM4eVvmMBE25UheeiLGsZqGuzN8XTyXZjdURlSD",
        ["sk-proj-FAM4eVvmMBE25UheeiLGsZqGuzN8XTyXZjdURlSD"],
    ),
    (
        "api_key",
        "Customer data in the log: sk-proj-Wqbqt0hdhzwP3M79Ntow1Uxd1i_0c0pJ3eG7SIVy; please scrub.",
        ["sk-proj-Wqbqt0hdhzwP3M79Ntow1Uxd1i_0c0pJ3eG7SIVy"],
    ),
    (
        "api_key",
        "Login failed for sk-proj-AaGqdXghYA_9RNTvGU-cqNGTIgk0z1HmU9IeCDth after the upgrade",
        ["sk-proj-AaGqdXghYA_9RNTvGU-cqNGTIgk0z1HmU9IeCDth"],
    ),
    (
        "api_key",
        "sk-proj-63guwC_pjR9PtoejZHnfaZ5GrHuTE0jd0j8My4oy",
        ["sk-proj-63guwC_pjR9PtoejZHnfaZ5GrHuTE0jd0j8My4oy"],
    ),
    ("api_key", "AKIA0U6RSGOL0TFI4YHT", ["AKIA0U6RSGOL0TFI4YHT"]),
    ("api_key", "Contact AKIAXJJSZ1JD9I1MRVIJ about the flaky checkout test", ["AKIAXJJSZ1JD9I1MRVIJ"]),
    ("api_key", "Login failed for AKIANQY0U5HMI23HQV7Y after the upgrade", ["AKIANQY0U5HMI23HQV7Y"]),
    (
        "api_key",
        "see notes: ghp_0ci72ZSxbgdUXlb7KofCkrPZYF4oLj24IrDB (from the support ticket)",
        ["ghp_0ci72ZSxbgdUXlb7KofCkrPZYF4oLj24IrDB"],
    ),
    (
        "api_key",
        "Contact ghp_M53O9b2TJnZq4eoNTOJ3RwzUrwuoHh5bLVZA about the flaky checkout test",
        ["ghp_M53O9b2TJnZq4eoNTOJ3RwzUrwuoHh5bLVZA"],
    ),
    (
        "api_key",
        "Expected OK, got 500 while calling with ghp_lfvTm7UWeOt5D6r4dW4Ffr1H5c95iomeivfD",
        ["ghp_lfvTm7UWeOt5D6r4dW4Ffr1H5c95iomeivfD"],
    ),
    (
        "api_key",
        "Login failed for xoxb-560788957781-SONhNZ2lAYYz60EwWQmsUMeH after the upgrade",
        ["xoxb-560788957781-SONhNZ2lAYYz60EwWQmsUMeH"],
    ),
    ("api_key", "Reporter: xoxb-961485750889-BtdUM6l0wneUV89mHqWtJ0ay", ["xoxb-961485750889-BtdUM6l0wneUV89mHqWtJ0ay"]),
    ("api_key", "AIzaObwJ6JRBCAYWtdzYdunJWQKjB6qQDvwq_c2", ["AIzaObwJ6JRBCAYWtdzYdunJWQKjB6qQDvwq_c2"]),
    (
        "api_key",
        "see notes: AIza9IUgWoqgifXOBvVMXFxO5W9rSYzVsBE0lzk (from the support ticket)",
        ["AIza9IUgWoqgifXOBvVMXFxO5W9rSYzVsBE0lzk"],
    ),
    ("api_key", "Repro steps sent by api_key=6eqc4XVka8LTLaaICPzKWnO0 yesterday.", ["6eqc4XVka8LTLaaICPzKWnO0"]),
    ("api_key", "Reporter: api_key=XKAPfcB16fUGLbApYc5Agmjk", ["XKAPfcB16fUGLbApYc5Agmjk"]),
    ("api_key", "Reporter: api_key=VdBm3U5Lc5qrDFZP5j0scIE3", ["VdBm3U5Lc5qrDFZP5j0scIE3"]),
    (
        "api_key",
        "Contact Authorization: Bearer GT9rlBF59-pHknitDSUHmoJRp39rdIvm about the flaky checkout test",
        ["GT9rlBF59-pHknitDSUHmoJRp39rdIvm"],
    ),
    (
        "api_key",
        "Reporter: Authorization: Bearer O5DQTpLWsVae9-OiGG6eCRz.e3pcttVN",
        ["O5DQTpLWsVae9-OiGG6eCRz.e3pcttVN"],
    ),
    (
        "api_key",
        "Contact Authorization: Bearer sQ8NJYllIl7nzHBV9J7YICBsQCev5Wfb about the flaky checkout test",
        ["sQ8NJYllIl7nzHBV9J7YICBsQCev5Wfb"],
    ),
    ("api_key", "Customer data in the log: password: oAevpHBPAC2e0h!; please scrub.", ["oAevpHBPAC2e0h!"]),
    ("api_key", "Contact password: mzCfWFNuXQboJR! about the flaky checkout test", ["mzCfWFNuXQboJR!"]),
    (
        "jwt",
        "Repro steps sent by token eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMzg1OTg2IiwgImVtYWlsIjogInUwQGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDB9.brQJYoF7rKjqNA9AlE0_sV762NN1NJ2uTy9cvHEc-yQ yesterday.",
        [
            "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMzg1OTg2IiwgImVtYWlsIjogInUwQGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDB9.brQJYoF7rKjqNA9AlE0_sV762NN1NJ2uTy9cvHEc-yQ",
            "brQJYoF7rKjqNA9AlE0_sV762NN1NJ2uTy9cvHEc-yQ",
        ],
    ),
    (
        "jwt",
        "Customer data in the log: token eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMjA3MzM1IiwgImVtYWlsIjogInUxQGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDF9.w8b4_1uAiUC0KufgJbSZmdXDDllIEGEM5rmGoDtcAY6; please scrub.",
        [
            "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMjA3MzM1IiwgImVtYWlsIjogInUxQGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDF9.w8b4_1uAiUC0KufgJbSZmdXDDllIEGEM5rmGoDtcAY6",
            "w8b4_1uAiUC0KufgJbSZmdXDDllIEGEM5rmGoDtcAY6",
        ],
    ),
    (
        "jwt",
        "Login failed for token eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiODI5NjY0IiwgImVtYWlsIjogInUyQGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDJ9.ggpUC3gBPnt-PtiWuRqkaRrgwffxyCBZNbR4x292nSy after the upgrade",
        [
            "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiODI5NjY0IiwgImVtYWlsIjogInUyQGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDJ9.ggpUC3gBPnt-PtiWuRqkaRrgwffxyCBZNbR4x292nSy",
            "ggpUC3gBPnt-PtiWuRqkaRrgwffxyCBZNbR4x292nSy",
        ],
    ),
    (
        "jwt",
        "Repro steps sent by token eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMTM2NTciLCAiZW1haWwiOiAidTNAZXhhbXBsZS5jb20iLCAiaWF0IjogMTcwMDAwMDAwM30.8ebr32VhbMpN8wH06i0vsgnC8XTBliLAgaRQKyVa0v8 yesterday.",
        [
            "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMTM2NTciLCAiZW1haWwiOiAidTNAZXhhbXBsZS5jb20iLCAiaWF0IjogMTcwMDAwMDAwM30.8ebr32VhbMpN8wH06i0vsgnC8XTBliLAgaRQKyVa0v8",
            "8ebr32VhbMpN8wH06i0vsgnC8XTBliLAgaRQKyVa0v8",
        ],
    ),
    (
        "jwt",
        "Customer data in the log: token eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMzQ2MjE2IiwgImVtYWlsIjogInU0QGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDR9.z7c_nMrxUH7hdie2FUVrfqGQoeHI8tGoBwowFhMcvd4; please scrub.",
        [
            "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMzQ2MjE2IiwgImVtYWlsIjogInU0QGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDR9.z7c_nMrxUH7hdie2FUVrfqGQoeHI8tGoBwowFhMcvd4",
            "z7c_nMrxUH7hdie2FUVrfqGQoeHI8tGoBwowFhMcvd4",
        ],
    ),
    (
        "jwt",
        "Login failed for token eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNTE5Mzc0IiwgImVtYWlsIjogInU1QGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDV9.mHLD6Etrb42QLDJRWoJZ7qj5YXiWJOpSTNQszcS1c52 after the upgrade",
        [
            "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNTE5Mzc0IiwgImVtYWlsIjogInU1QGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDV9.mHLD6Etrb42QLDJRWoJZ7qj5YXiWJOpSTNQszcS1c52",
            "mHLD6Etrb42QLDJRWoJZ7qj5YXiWJOpSTNQszcS1c52",
        ],
    ),
    (
        "jwt",
        "Expected OK, got 500 while calling with token eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNDI2Mjg4IiwgImVtYWlsIjogInU2QGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDZ9.NUgrB9rRWdeMR19YDxs_lH0IGk-rBjP0HONABTrig_Y",
        [
            "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNDI2Mjg4IiwgImVtYWlsIjogInU2QGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDZ9.NUgrB9rRWdeMR19YDxs_lH0IGk-rBjP0HONABTrig_Y",
            "NUgrB9rRWdeMR19YDxs_lH0IGk-rBjP0HONABTrig_Y",
        ],
    ),
    (
        "jwt",
        "token eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiOTIyMzg3IiwgImVtYWlsIjogInU3QGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDd9.Ez1QaO8ltNarNIkv2sEIvHVEMPuWN91qIFJc-RJcg6u",
        [
            "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiOTIyMzg3IiwgImVtYWlsIjogInU3QGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDd9.Ez1QaO8ltNarNIkv2sEIvHVEMPuWN91qIFJc-RJcg6u",
            "Ez1QaO8ltNarNIkv2sEIvHVEMPuWN91qIFJc-RJcg6u",
        ],
    ),
    (
        "jwt",
        "Repro steps sent by token eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNjM1OTQyIiwgImVtYWlsIjogInU4QGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDh9.C8v1wD6p_0I2vHwylPemLjlOakgbSD1cvMWh854lcpi yesterday.",
        [
            "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNjM1OTQyIiwgImVtYWlsIjogInU4QGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDh9.C8v1wD6p_0I2vHwylPemLjlOakgbSD1cvMWh854lcpi",
            "C8v1wD6p_0I2vHwylPemLjlOakgbSD1cvMWh854lcpi",
        ],
    ),
    (
        "jwt",
        "Repro steps sent by token eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNjMxODcxIiwgImVtYWlsIjogInU5QGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDl9.Dtp-EHmAceKUyNvoErrZbQdXjtTWLnAjf-iLyxKrlvi yesterday.",
        [
            "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNjMxODcxIiwgImVtYWlsIjogInU5QGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMDl9.Dtp-EHmAceKUyNvoErrZbQdXjtTWLnAjf-iLyxKrlvi",
            "Dtp-EHmAceKUyNvoErrZbQdXjtTWLnAjf-iLyxKrlvi",
        ],
    ),
    (
        "jwt",
        "Contact token eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMzQxODgxIiwgImVtYWlsIjogInUxMEBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDEwfQ.QKO7s6QGXh80XSRiRhkO-dYy95oBlsXF_x_G6vrkP3n about the flaky checkout test",
        [
            "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMzQxODgxIiwgImVtYWlsIjogInUxMEBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDEwfQ.QKO7s6QGXh80XSRiRhkO-dYy95oBlsXF_x_G6vrkP3n",
            "QKO7s6QGXh80XSRiRhkO-dYy95oBlsXF_x_G6vrkP3n",
        ],
    ),
    (
        "jwt",
        "Expected OK, got 500 while calling with token eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMTEyNDkzIiwgImVtYWlsIjogInUxMUBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDExfQ.NyAwojXP4fl_5jVAzMkXsczhrvsptposumel5pJ53Mk",
        [
            "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMTEyNDkzIiwgImVtYWlsIjogInUxMUBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDExfQ.NyAwojXP4fl_5jVAzMkXsczhrvsptposumel5pJ53Mk",
            "NyAwojXP4fl_5jVAzMkXsczhrvsptposumel5pJ53Mk",
        ],
    ),
    (
        "jwt",
        "token eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNTQ2MjMwIiwgImVtYWlsIjogInUxMkBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDEyfQ.e3Gho5_TOKLxuocvbOVAhWsFxLgeaYvdilVzkS5tu1b",
        [
            "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNTQ2MjMwIiwgImVtYWlsIjogInUxMkBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDEyfQ.e3Gho5_TOKLxuocvbOVAhWsFxLgeaYvdilVzkS5tu1b",
            "e3Gho5_TOKLxuocvbOVAhWsFxLgeaYvdilVzkS5tu1b",
        ],
    ),
    (
        "jwt",
        "token eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiODQxNDQ1IiwgImVtYWlsIjogInUxM0BleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDEzfQ.9s6SfNfzjhcrwnGJo4wEkxt0fMcHJLr5d021Ht4GqLV",
        [
            "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiODQxNDQ1IiwgImVtYWlsIjogInUxM0BleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDEzfQ.9s6SfNfzjhcrwnGJo4wEkxt0fMcHJLr5d021Ht4GqLV",
            "9s6SfNfzjhcrwnGJo4wEkxt0fMcHJLr5d021Ht4GqLV",
        ],
    ),
    (
        "jwt",
        "see notes: token eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiODkzOTk5IiwgImVtYWlsIjogInUxNEBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDE0fQ.eJ7dAPytaujRktDskpihamM9aQwiuXEd__IGJdnm_ac (from the support ticket)",
        [
            "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiODkzOTk5IiwgImVtYWlsIjogInUxNEBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDE0fQ.eJ7dAPytaujRktDskpihamM9aQwiuXEd__IGJdnm_ac",
            "eJ7dAPytaujRktDskpihamM9aQwiuXEd__IGJdnm_ac",
        ],
    ),
    (
        "jwt",
        "Reporter: token eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNzcyNDk5IiwgImVtYWlsIjogInUxNUBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDE1fQ.6ZY-Qxjs3SPcLQEP7rNqaG9qyirEQW8N7VN82f8_Pwy",
        [
            "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNzcyNDk5IiwgImVtYWlsIjogInUxNUBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDE1fQ.6ZY-Qxjs3SPcLQEP7rNqaG9qyirEQW8N7VN82f8_Pwy",
            "6ZY-Qxjs3SPcLQEP7rNqaG9qyirEQW8N7VN82f8_Pwy",
        ],
    ),
    (
        "jwt",
        "Customer data in the log: token eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMTU4MzgzIiwgImVtYWlsIjogInUxNkBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDE2fQ.SQFFeMbLau3OeBVi1JZSjK_WoOaEtflQjYZ58z_gAcY; please scrub.",
        [
            "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMTU4MzgzIiwgImVtYWlsIjogInUxNkBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDE2fQ.SQFFeMbLau3OeBVi1JZSjK_WoOaEtflQjYZ58z_gAcY",
            "SQFFeMbLau3OeBVi1JZSjK_WoOaEtflQjYZ58z_gAcY",
        ],
    ),
    (
        "jwt",
        "see notes: token eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMTQyNDU0IiwgImVtYWlsIjogInUxN0BleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDE3fQ.MkP97RhxZVf_TJAWxaDDA1gI-eJQ4kb2kJa4GS-ajVb (from the support ticket)",
        [
            "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMTQyNDU0IiwgImVtYWlsIjogInUxN0BleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDE3fQ.MkP97RhxZVf_TJAWxaDDA1gI-eJQ4kb2kJa4GS-ajVb",
            "MkP97RhxZVf_TJAWxaDDA1gI-eJQ4kb2kJa4GS-ajVb",
        ],
    ),
    (
        "jwt",
        "see notes: token eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNzE2ODIyIiwgImVtYWlsIjogInUxOEBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDE4fQ.tEET4tf-PsRAEiiH7jxjuAWRmmL9FqdFZ3IVHYGHAxv (from the support ticket)",
        [
            "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNzE2ODIyIiwgImVtYWlsIjogInUxOEBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDE4fQ.tEET4tf-PsRAEiiH7jxjuAWRmmL9FqdFZ3IVHYGHAxv",
            "tEET4tf-PsRAEiiH7jxjuAWRmmL9FqdFZ3IVHYGHAxv",
        ],
    ),
    (
        "jwt",
        "Contact token eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNzM5NzU3IiwgImVtYWlsIjogInUxOUBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDE5fQ.SG5bj-NorsGUM0FJB1hciX8IvXN-6F9OqV9vO8W1bim about the flaky checkout test",
        [
            "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNzM5NzU3IiwgImVtYWlsIjogInUxOUBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDE5fQ.SG5bj-NorsGUM0FJB1hciX8IvXN-6F9OqV9vO8W1bim",
            "SG5bj-NorsGUM0FJB1hciX8IvXN-6F9OqV9vO8W1bim",
        ],
    ),
    (
        "jwt",
        "Customer data in the log: token eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMTUyOTg2IiwgImVtYWlsIjogInUyMEBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDIwfQ.XX1dU0qwFvTEO6coKbGFqpdQVAXxsbOT-DF9kNsxlDj; please scrub.",
        [
            "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMTUyOTg2IiwgImVtYWlsIjogInUyMEBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDIwfQ.XX1dU0qwFvTEO6coKbGFqpdQVAXxsbOT-DF9kNsxlDj",
            "XX1dU0qwFvTEO6coKbGFqpdQVAXxsbOT-DF9kNsxlDj",
        ],
    ),
    (
        "jwt",
        "Reporter: token eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNzY5MDciLCAiZW1haWwiOiAidTIxQGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMjF9.6IYUktBbb3ufGD-AO0f9WBFOaVZB-EF8UWaMr6-G9Dp",
        [
            "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNzY5MDciLCAiZW1haWwiOiAidTIxQGV4YW1wbGUuY29tIiwgImlhdCI6IDE3MDAwMDAwMjF9.6IYUktBbb3ufGD-AO0f9WBFOaVZB-EF8UWaMr6-G9Dp",
            "6IYUktBbb3ufGD-AO0f9WBFOaVZB-EF8UWaMr6-G9Dp",
        ],
    ),
    (
        "jwt",
        "Reporter: token eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMzg2MzM3IiwgImVtYWlsIjogInUyMkBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDIyfQ.oNnFc5NDyrBtrkD51jGj08LWyYccdzEEe8b7aguODMY",
        [
            "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMzg2MzM3IiwgImVtYWlsIjogInUyMkBleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDIyfQ.oNnFc5NDyrBtrkD51jGj08LWyYccdzEEe8b7aguODMY",
            "oNnFc5NDyrBtrkD51jGj08LWyYccdzEEe8b7aguODMY",
        ],
    ),
    (
        "jwt",
        "Login failed for token eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNzI3NTEwIiwgImVtYWlsIjogInUyM0BleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDIzfQ.vDz1UjNsp7_J6kz7qlCPlLrtZUD0xjjAwgfecMnQhcZ after the upgrade",
        [
            "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNzI3NTEwIiwgImVtYWlsIjogInUyM0BleGFtcGxlLmNvbSIsICJpYXQiOiAxNzAwMDAwMDIzfQ.vDz1UjNsp7_J6kz7qlCPlLrtZUD0xjjAwgfecMnQhcZ",
            "vDz1UjNsp7_J6kz7qlCPlLrtZUD0xjjAwgfecMnQhcZ",
        ],
    ),
    (
        "card",
        "Customer data in the log: card 3508275262071938; please scrub.",
        ["3508275262071938", "3508275262071938"],
    ),
    ("card", "Repro steps sent by card 5555 3222 3526 1076 yesterday.", ["5555 3222 3526 1076", "5555322235261076"]),
    (
        "card",
        "see notes: card 5520-1621-3503-2280 (from the support ticket)",
        ["5520-1621-3503-2280", "5520162135032280"],
    ),
    ("card", "see notes: card 5554984997942853 (from the support ticket)", ["5554984997942853", "5554984997942853"]),
    ("card", "card 4811 3836 1927 3", ["4811 3836 1927 3", "4811383619273"]),
    (
        "card",
        "Login failed for card 5192-3232-8334-5612 after the upgrade",
        ["5192-3232-8334-5612", "5192323283345612"],
    ),
    ("card", "Login failed for card 4637649304698357 after the upgrade", ["4637649304698357", "4637649304698357"]),
    ("card", "Repro steps sent by card 6011 3872 6416 1709 yesterday.", ["6011 3872 6416 1709", "6011387264161709"]),
    ("card", "Customer data in the log: card 4018-1561-6275-0; please scrub.", ["4018-1561-6275-0", "4018156162750"]),
    ("card", "card 3564052537686050", ["3564052537686050", "3564052537686050"]),
    (
        "card",
        "Expected OK, got 500 while calling with card 3537 8978 3918 5837",
        ["3537 8978 3918 5837", "3537897839185837"],
    ),
    (
        "card",
        "see notes: card 5191-9107-3094-3592 (from the support ticket)",
        ["5191-9107-3094-3592", "5191910730943592"],
    ),
    ("card", "Repro steps sent by card 4565784888594 yesterday.", ["4565784888594", "4565784888594"]),
    (
        "card",
        "Expected OK, got 500 while calling with card 6011 0855 6590 5168",
        ["6011 0855 6590 5168", "6011085565905168"],
    ),
    (
        "card",
        "Contact card 3759-0549-2291-759 about the flaky checkout test",
        ["3759-0549-2291-759", "375905492291759"],
    ),
    ("card", "Reporter: card 5510574709225359", ["5510574709225359", "5510574709225359"]),
    (
        "card",
        "Login failed for card 6011 7752 2607 4905 after the upgrade",
        ["6011 7752 2607 4905", "6011775226074905"],
    ),
    ("card", "Repro steps sent by card 4809-4336-0328-9 yesterday.", ["4809-4336-0328-9", "4809433603289"]),
    (
        "card",
        "Customer data in the log: card 5131984269795007; please scrub.",
        ["5131984269795007", "5131984269795007"],
    ),
    ("card", "Reporter: card 5168 8768 5489 2742", ["5168 8768 5489 2742", "5168876854892742"]),
    ("card", "card 4857-2250-0429-3196", ["4857-2250-0429-3196", "4857225004293196"]),
    (
        "card",
        "Customer data in the log: card 5596436397921508; please scrub.",
        ["5596436397921508", "5596436397921508"],
    ),
    ("card", "card 5524 7720 8955 1121", ["5524 7720 8955 1121", "5524772089551121"]),
    ("card", "Repro steps sent by card 3787-0227-6563-769 yesterday.", ["3787-0227-6563-769", "378702276563769"]),
    ("card", "Contact card 5572226059947752 about the flaky checkout test", ["5572226059947752", "5572226059947752"]),
    (
        "card",
        "see notes: card 5535 3316 4437 7766 (from the support ticket)",
        ["5535 3316 4437 7766", "5535331644377766"],
    ),
    (
        "iban",
        "Contact refund to DE69867891505592991785 about the flaky checkout test",
        ["DE69867891505592991785", "DE69867891505592991785"],
    ),
    (
        "iban",
        "Repro steps sent by refund to GB48 NWBK 8758 7925 1487 72 yesterday.",
        ["GB48 NWBK 8758 7925 1487 72", "GB48NWBK87587925148772"],
    ),
    ("iban", "refund to FR2932863868700530120564675", ["FR2932863868700530120564675", "FR2932863868700530120564675"]),
    (
        "iban",
        "see notes: refund to NL28 ABNA 6360 9092 07 (from the support ticket)",
        ["NL28 ABNA 6360 9092 07", "NL28ABNA6360909207"],
    ),
    ("iban", "Reporter: refund to ES5654148425740300011122", ["ES5654148425740300011122", "ES5654148425740300011122"]),
    (
        "iban",
        "refund to IT65 X547 4668 8021 7765 8870 612",
        ["IT65 X547 4668 8021 7765 8870 612", "IT65X5474668802177658870612"],
    ),
    (
        "iban",
        "Login failed for refund to CH4108432259489450932 after the upgrade",
        ["CH4108432259489450932", "CH4108432259489450932"],
    ),
    (
        "iban",
        "see notes: refund to BE82 0943 0621 3951 (from the support ticket)",
        ["BE82 0943 0621 3951", "BE82094306213951"],
    ),
    (
        "iban",
        "Expected OK, got 500 while calling with refund to DE73237190261892071147",
        ["DE73237190261892071147", "DE73237190261892071147"],
    ),
    (
        "iban",
        "Expected OK, got 500 while calling with refund to GB03 NWBK 4848 6691 1614 78",
        ["GB03 NWBK 4848 6691 1614 78", "GB03NWBK48486691161478"],
    ),
    (
        "iban",
        "Reporter: refund to FR7849632025045804327105086",
        ["FR7849632025045804327105086", "FR7849632025045804327105086"],
    ),
    (
        "iban",
        "Customer data in the log: refund to NL08 ABNA 9655 7283 55; please scrub.",
        ["NL08 ABNA 9655 7283 55", "NL08ABNA9655728355"],
    ),
    (
        "iban",
        "Repro steps sent by refund to ES5759830458496598737497 yesterday.",
        ["ES5759830458496598737497", "ES5759830458496598737497"],
    ),
    (
        "iban",
        "see notes: refund to IT21 X864 6121 7304 0907 3677 695 (from the support ticket)",
        ["IT21 X864 6121 7304 0907 3677 695", "IT21X8646121730409073677695"],
    ),
    ("iban", "refund to CH7054977138671148496", ["CH7054977138671148496", "CH7054977138671148496"]),
    (
        "iban",
        "Repro steps sent by refund to BE06 8504 0870 6975 yesterday.",
        ["BE06 8504 0870 6975", "BE06850408706975"],
    ),
    (
        "iban",
        "Repro steps sent by refund to DE35749398412499333025 yesterday.",
        ["DE35749398412499333025", "DE35749398412499333025"],
    ),
    (
        "iban",
        "Customer data in the log: refund to GB20 NWBK 5987 9302 8435 53; please scrub.",
        ["GB20 NWBK 5987 9302 8435 53", "GB20NWBK59879302843553"],
    ),
    (
        "iban",
        "Reporter: refund to FR6223434309662372195834010",
        ["FR6223434309662372195834010", "FR6223434309662372195834010"],
    ),
    (
        "iban",
        "Login failed for refund to NL20 ABNA 4564 9281 61 after the upgrade",
        ["NL20 ABNA 4564 9281 61", "NL20ABNA4564928161"],
    ),
    (
        "iban",
        "Expected OK, got 500 while calling with refund to ES1741683533983860857180",
        ["ES1741683533983860857180", "ES1741683533983860857180"],
    ),
    (
        "iban",
        "Contact refund to IT86 X364 8810 3541 7264 1581 071 about the flaky checkout test",
        ["IT86 X364 8810 3541 7264 1581 071", "IT86X3648810354172641581071"],
    ),
    ("iban", "Reporter: refund to CH3407961611759661087", ["CH3407961611759661087", "CH3407961611759661087"]),
    (
        "iban",
        "Repro steps sent by refund to BE10 0352 5212 0256 yesterday.",
        ["BE10 0352 5212 0256", "BE10035252120256"],
    ),
    (
        "iban",
        "Customer data in the log: refund to DE43532805621794046780; please scrub.",
        ["DE43532805621794046780", "DE43532805621794046780"],
    ),
    (
        "iban",
        "Expected OK, got 500 while calling with refund to GB49 NWBK 4580 7013 8452 52",
        ["GB49 NWBK 4580 7013 8452 52", "GB49NWBK45807013845252"],
    ),
    (
        "url",
        "Reporter: https://cprxie:f6C2CKbhrPAv@api.example.net:8443/artifact.zip",
        ["https://cprxie:f6C2CKbhrPAv@api.example.net:8443/artifact.zip", "f6C2CKbhrPAv", "cprxie:f6C2CKbhrPAv"],
    ),
    (
        "url",
        "https://db.internal/callback?token=RN7alHDuZbUdAzPhRo2ZFRdr1ZA6&page=2",
        ["https://db.internal/callback?token=RN7alHDuZbUdAzPhRo2ZFRdr1ZA6&page=2", "RN7alHDuZbUdAzPhRo2ZFRdr1ZA6"],
    ),
    (
        "url",
        "postgres://zaxfox:pbOgnZYWYKzZ@ci.example.com/reports",
        ["postgres://zaxfox:pbOgnZYWYKzZ@ci.example.com/reports", "pbOgnZYWYKzZ"],
    ),
    (
        "url",
        "Expected OK, got 500 while calling with https://db.internal/dl?file=a.pdf&X-Amz-Signature=TdZNa47tVsQF8YkNDDLI4Q8bTIyu",
        [
            "https://db.internal/dl?file=a.pdf&X-Amz-Signature=TdZNa47tVsQF8YkNDDLI4Q8bTIyu",
            "TdZNa47tVsQF8YkNDDLI4Q8bTIyu",
        ],
    ),
    (
        "url",
        "Repro steps sent by https://ci.example.com/reset#access_token=0NIcW78yulvTgREi4WUknZXaRJb4 yesterday.",
        ["https://ci.example.com/reset#access_token=0NIcW78yulvTgREi4WUknZXaRJb4", "0NIcW78yulvTgREi4WUknZXaRJb4"],
    ),
    (
        "url",
        "ftp://3vatsf:zgigfSeBXwPz@api.example.net:8443/pub",
        ["ftp://3vatsf:zgigfSeBXwPz@api.example.net:8443/pub", "zgigfSeBXwPz"],
    ),
    (
        "url",
        "Login failed for https://sxooep:ASZkurwaBifl@files.example.org/artifact.zip after the upgrade",
        ["https://sxooep:ASZkurwaBifl@files.example.org/artifact.zip", "ASZkurwaBifl", "sxooep:ASZkurwaBifl"],
    ),
    (
        "url",
        "see notes: https://api.example.net:8443/callback?token=gea9r55iltbJvfSBvfeCdpEkLlOs&page=2 (from the support ticket)",
        [
            "https://api.example.net:8443/callback?token=gea9r55iltbJvfSBvfeCdpEkLlOs&page=2",
            "gea9r55iltbJvfSBvfeCdpEkLlOs",
        ],
    ),
    (
        "url",
        "Contact postgres://7jb7mc:3mk63pmbt3yW@ci.example.com/reports about the flaky checkout test",
        ["postgres://7jb7mc:3mk63pmbt3yW@ci.example.com/reports", "3mk63pmbt3yW"],
    ),
    (
        "url",
        "Login failed for https://db.internal/dl?file=a.pdf&X-Amz-Signature=RZICRJdqRoBRl6KwGUapn4Op4BFz after the upgrade",
        [
            "https://db.internal/dl?file=a.pdf&X-Amz-Signature=RZICRJdqRoBRl6KwGUapn4Op4BFz",
            "RZICRJdqRoBRl6KwGUapn4Op4BFz",
        ],
    ),
    (
        "url",
        "Customer data in the log: https://ci.example.com/reset#access_token=bwMkVEmtSssQgwbRujmuZuObo255; please scrub.",
        ["https://ci.example.com/reset#access_token=bwMkVEmtSssQgwbRujmuZuObo255", "bwMkVEmtSssQgwbRujmuZuObo255"],
    ),
    (
        "url",
        "Login failed for ftp://eoz3gk:30KHK1u6N2v0@files.example.org/pub after the upgrade",
        ["ftp://eoz3gk:30KHK1u6N2v0@files.example.org/pub", "30KHK1u6N2v0"],
    ),
    (
        "url",
        "Expected OK, got 500 while calling with https://sn0fzu:kgcCKabJZDdW@files.example.org/artifact.zip",
        ["https://sn0fzu:kgcCKabJZDdW@files.example.org/artifact.zip", "kgcCKabJZDdW", "sn0fzu:kgcCKabJZDdW"],
    ),
    (
        "url",
        "Login failed for https://api.example.net:8443/callback?token=MXYs99DD2Aq1XEYz5HeqC6JdRhAg&page=2 after the upgrade",
        [
            "https://api.example.net:8443/callback?token=MXYs99DD2Aq1XEYz5HeqC6JdRhAg&page=2",
            "MXYs99DD2Aq1XEYz5HeqC6JdRhAg",
        ],
    ),
    (
        "url",
        "Repro steps sent by postgres://szc3gt:1fDsuigrqcYb@api.example.net:8443/reports yesterday.",
        ["postgres://szc3gt:1fDsuigrqcYb@api.example.net:8443/reports", "1fDsuigrqcYb"],
    ),
    (
        "url",
        "see notes: https://files.example.org/dl?file=a.pdf&X-Amz-Signature=nvBd1SeuQd7ohjT7GBAVfdyC2DiY (from the support ticket)",
        [
            "https://files.example.org/dl?file=a.pdf&X-Amz-Signature=nvBd1SeuQd7ohjT7GBAVfdyC2DiY",
            "nvBd1SeuQd7ohjT7GBAVfdyC2DiY",
        ],
    ),
    (
        "url",
        "Repro steps sent by https://api.example.net:8443/reset#access_token=CAXOH7yDATjbrEE8I4j8uV5uhQN4 yesterday.",
        [
            "https://api.example.net:8443/reset#access_token=CAXOH7yDATjbrEE8I4j8uV5uhQN4",
            "CAXOH7yDATjbrEE8I4j8uV5uhQN4",
        ],
    ),
    (
        "url",
        "Repro steps sent by ftp://pepxcm:hGYWlm0PDffJ@files.example.org/pub yesterday.",
        ["ftp://pepxcm:hGYWlm0PDffJ@files.example.org/pub", "hGYWlm0PDffJ"],
    ),
    (
        "url",
        "see notes: https://zb4txd:GWZCQKlH5WGN@files.example.org/artifact.zip (from the support ticket)",
        ["https://zb4txd:GWZCQKlH5WGN@files.example.org/artifact.zip", "GWZCQKlH5WGN", "zb4txd:GWZCQKlH5WGN"],
    ),
    (
        "url",
        "Repro steps sent by https://db.internal/callback?token=jf44yJIMmHV4b8CHlegzvbyimtVb&page=2 yesterday.",
        ["https://db.internal/callback?token=jf44yJIMmHV4b8CHlegzvbyimtVb&page=2", "jf44yJIMmHV4b8CHlegzvbyimtVb"],
    ),
    (
        "url",
        "Repro steps sent by postgres://yycypf:F1NlkIHi50aq@db.internal/reports yesterday.",
        ["postgres://yycypf:F1NlkIHi50aq@db.internal/reports", "F1NlkIHi50aq"],
    ),
    (
        "url",
        "Expected OK, got 500 while calling with https://ci.example.com/dl?file=a.pdf&X-Amz-Signature=oaoKvsysbpgrCjSxh7kg4MgIrFnW",
        [
            "https://ci.example.com/dl?file=a.pdf&X-Amz-Signature=oaoKvsysbpgrCjSxh7kg4MgIrFnW",
            "oaoKvsysbpgrCjSxh7kg4MgIrFnW",
        ],
    ),
    (
        "url",
        "https://db.internal/reset#access_token=Lb4HVFdczFUAXX4G0GABfJpEl5EG",
        ["https://db.internal/reset#access_token=Lb4HVFdczFUAXX4G0GABfJpEl5EG", "Lb4HVFdczFUAXX4G0GABfJpEl5EG"],
    ),
    (
        "url",
        "Reporter: ftp://8udett:XjsrdM7hdcAb@ci.example.com/pub",
        ["ftp://8udett:XjsrdM7hdcAb@ci.example.com/pub", "XjsrdM7hdcAb"],
    ),
    (
        "url",
        "Login failed for https://so4fks:f7ex0CHJVj6Q@api.example.net:8443/artifact.zip after the upgrade",
        ["https://so4fks:f7ex0CHJVj6Q@api.example.net:8443/artifact.zip", "f7ex0CHJVj6Q", "so4fks:f7ex0CHJVj6Q"],
    ),
    (
        "url",
        "Contact https://files.example.org/callback?token=Wsh3vKfpCS5TZT80sexCV9OV5Noe&page=2 about the flaky checkout test",
        [
            "https://files.example.org/callback?token=Wsh3vKfpCS5TZT80sexCV9OV5Noe&page=2",
            "Wsh3vKfpCS5TZT80sexCV9OV5Noe",
        ],
    ),
    ("name", "Repro steps sent by assigned to dana smith yesterday.", ["dana smith"]),
    ("name", "Customer data in the log: assigned to Jörg Müller; please scrub.", ["Jörg Müller"]),
    ("name", "assigned to Priya Raman", ["Priya Raman"]),
    ("name", "assigned to CHEN WEI", ["CHEN WEI"]),
    ("name", "Reporter: assigned to Aoife O'Connor", ["Aoife O'Connor"]),
    ("name", "Contact assigned to Lukas Novak about the flaky checkout test", ["Lukas Novak"]),
    ("name", "Expected OK, got 500 while calling with assigned to dana smith", ["dana smith"]),
    ("name", "see notes: assigned to Jörg Müller (from the support ticket)", ["Jörg Müller"]),
    ("name", "Login failed for assigned to Priya Raman after the upgrade", ["Priya Raman"]),
    ("name", "Repro steps sent by assigned to CHEN WEI yesterday.", ["CHEN WEI"]),
    ("name", "Customer data in the log: assigned to Aoife O'Connor; please scrub.", ["Aoife O'Connor"]),
    ("name", "assigned to Lukas Novak", ["Lukas Novak"]),
    ("name", "Login failed for assigned to dana smith after the upgrade", ["dana smith"]),
    ("name", "Contact assigned to Jörg Müller about the flaky checkout test", ["Jörg Müller"]),
    ("name", "Reporter: assigned to Priya Raman", ["Priya Raman"]),
    ("name", "Customer data in the log: assigned to CHEN WEI; please scrub.", ["CHEN WEI"]),
    ("name", "Customer data in the log: assigned to Aoife O'Connor; please scrub.", ["Aoife O'Connor"]),
    ("name", "Repro steps sent by assigned to Lukas Novak yesterday.", ["Lukas Novak"]),
    ("name", "Repro steps sent by assigned to dana smith yesterday.", ["dana smith"]),
    ("name", "assigned to Jörg Müller", ["Jörg Müller"]),
    ("name", "assigned to Priya Raman", ["Priya Raman"]),
    ("name", "Contact assigned to CHEN WEI about the flaky checkout test", ["CHEN WEI"]),
    ("name", "see notes: assigned to Aoife O'Connor (from the support ticket)", ["Aoife O'Connor"]),
    ("name", "Expected OK, got 500 while calling with assigned to Lukas Novak", ["Lukas Novak"]),
]

NEGATIVES = [
    "RC-2026.11.2 failed 3 of 120 cases",
    "Version 5.2.19 of the backend",
    "Mantis #4711 is still open",
    "Executed 2026-11-25 10:30:00 UTC",
    "build 20261125 on runner 7",
    "port 8080 refused the connection",
    "ratio 3:2 of passes to failures",
    "https://example.com/docs?page=2&sort=name",
    "priority 1-4, owner lee",
    "LOGIN-001 passed on RC-2026.11.1",
    "elapsed 12:30:45 in total",
    "took 1500 ms (p95 2300 ms)",
    "See https://mantis.example.invalid/view.php?id=4711",
    "case key CHECKOUT-042, suite Payments",
    "the key insight is caching",
    "token bucket algorithm settings",
    "retry 3 times with backoff 0.5 s",
    "sha 3f2a9c1 deployed",
    "error code E1234 at step 5",
    "temperature 21.5 degrees",
    "v1.2.3-rc.4",
    "50 % of 200 tests",
    "invoice 2026/11/0042",
    "the password field must be masked",
    "use the secret manager",
]

# Formats from the outside attack pass, written for this corpus (fake values; generated once with a fixed seed, ids
# and IBANs with valid check digits from python-stdnum).
ATTACK_FORMATS = [
    (
        "url",
        "Nightly alerts post to https://hooks.slack.com/services/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 (channel #qa)",
        ["https://hooks.slack.com/services/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", "Yk3IMJ9PvMJ11Uqz6DNLLgGx"],
    ),
    (
        "url",
        "discord hook: https://discord.com/api/webhooks/870442606952471286/PYxAwIZ0DqK7fCOokPyQnP8o4FG5B5EGnwAp-cz2jlPR9-RrxEmlKi-Mf549e3y3FEYV",
        [
            "https://discord.com/api/webhooks/870442606952471286/PYxAwIZ0DqK7fCOokPyQnP8o4FG5B5EGnwAp-cz2jlPR9-RrxEmlKi-Mf549e3y3FEYV",
            "PYxAwIZ0DqK7fCOokPyQnP8o4FG5B5EGnwAp-cz2jlPR9-RrxEmlKi-Mf549e3y3FEYV",
        ],
    ),
    (
        "url",
        "Failure notifier uses https://discordapp.com/api/webhooks/385254135040844562/HH_hkz0nQQG9WJ05X72qibobT-Jox17RWEVxropmO6W9_yNsOSUTbfUwzov1sjBNMFZl",
        [
            "https://discordapp.com/api/webhooks/385254135040844562/HH_hkz0nQQG9WJ05X72qibobT-Jox17RWEVxropmO6W9_yNsOSUTbfUwzov1sjBNMFZl",
            "HH_hkz0nQQG9WJ05X72qibobT-Jox17RWEVxropmO6W9_yNsOSUTbfUwzov1sjBNMFZl",
        ],
    ),
    (
        "url",
        "Teams connector https://contoso.webhook.office.com/webhookb2/595e9122-116a-44b7-8c08-854a84684267@4c980fca-8dee-1dcc-e841-f4a5b5ad3cf5/IncomingWebhook/360ba92dee64544f9664a371e5048e7d/8f4f53f0-b0d7-4b87-c3b5-ce2126e3ca39",
        [
            "https://contoso.webhook.office.com/webhookb2/595e9122-116a-44b7-8c08-854a84684267@4c980fca-8dee-1dcc-e841-f4a5b5ad3cf5/IncomingWebhook/360ba92dee64544f9664a371e5048e7d/8f4f53f0-b0d7-4b87-c3b5-ce2126e3ca39",
            "360ba92dee64544f9664a371e5048e7d/8f4f53f0-b0d7-4b87-c3b5-ce2126e3ca39",
        ],
    ),
    (
        "url",
        "old Teams hook https://outlook.office.com/webhook/47c17988-1208-75ed-cb0c-450e17472dc9@30f7ccff-44c3-698e-3feb-947e0fa5f9b3/IncomingWebhook/e236a3305ae95cdff4fbccfe78db0dd9/22e863a0-72bf-cc6c-e7fb-bd5273656f0f",
        [
            "https://outlook.office.com/webhook/47c17988-1208-75ed-cb0c-450e17472dc9@30f7ccff-44c3-698e-3feb-947e0fa5f9b3/IncomingWebhook/e236a3305ae95cdff4fbccfe78db0dd9/22e863a0-72bf-cc6c-e7fb-bd5273656f0f",
            "e236a3305ae95cdff4fbccfe78db0dd9/22e863a0-72bf-cc6c-e7fb-bd5273656f0f",
        ],
    ),
    (
        "url",
        "Power Automate flow: https://prod-12.westeurope.logic.azure.com:443/workflows/1ad35a70653c83ef7a3eb051cd058a65/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=r2GhlShhmeZV_R2gMwNRxovC14Hqrjz16A8eXXJg5tf",
        [
            "https://prod-12.westeurope.logic.azure.com:443/workflows/1ad35a70653c83ef7a3eb051cd058a65/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=r2GhlShhmeZV_R2gMwNRxovC14Hqrjz16A8eXXJg5tf",
            "r2GhlShhmeZV_R2gMwNRxovC14Hqrjz16A8eXXJg5tf",
        ],
    ),
    (
        "url",
        "Google Chat space https://chat.googleapis.com/v1/spaces/AAAA9eNsEkn/messages?key=AIza7orfo1hXLnqe3yeuDeWQmeZxldbwrg_WQrs&token=AVZSEzia18ZDLLtxzVMoiE7CfpzNN3HLr4-wBcdqt61",
        [
            "https://chat.googleapis.com/v1/spaces/AAAA9eNsEkn/messages?key=AIza7orfo1hXLnqe3yeuDeWQmeZxldbwrg_WQrs&token=AVZSEzia18ZDLLtxzVMoiE7CfpzNN3HLr4-wBcdqt61"
        ],
    ),
    (
        "api_key",
        "STRIPE_SECRET_KEY=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",
        [
            "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",
            "oQNCvMKjjzvHFb5ssScv057EnOpIKZhEreZc1IFsFsM94XuwyDecOD4pf6nb2h4fKKHqyKkNFIy2eogIZ0qIkXhzjaErJRgjzJc",
        ],
    ),
    (
        "api_key",
        "payments failed with key sk_live_lUlkjpcZsNlOtnCdb1qOl2CO in prod",
        ["sk_live_lUlkjpcZsNlOtnCdb1qOl2CO"],
    ),
    (
        "api_key",
        "restricted key 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 leaked in the log",
        [
            "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",
            "6lz1pkJGcW3ALRUn542ysZySZeuFiEXpVdE58zHYprM8nkSCV3zwgIj85ZrHnoA8weZ",
        ],
    ),
    (
        "api_key",
        "storage: DefaultEndpointsProtocol=https;AccountName=qareports;AccountKey=pT/cN1KTpfKgVP42oBwpMS1d+nxYdu+B6VNhO7p+DmfP87cl/cFBm0pmNhZuOVzOojn//WUZPmEZbnBdUsJTDg==;EndpointSuffix=core.windows.net",
        [
            "pT/cN1KTpfKgVP42oBwpMS1d+nxYdu+B6VNhO7p+DmfP87cl/cFBm0pmNhZuOVzOojn//WUZPmEZbnBdUsJTDg==",
            "pT/cN1KTpfKgVP42oBwpMS1d+nxYdu+B6VNhO7p+",
        ],
    ),
    (
        "api_key",
        '"AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=rpfunc;AccountKey=5VYKlPkVB70IajbOyyHK/N3dQjVmnUDJsRENlPkw89nv3XNbmEqsAT4KWcvlv2NunfEP6JrlO5frfNAhDZmsrQ=="',
        ["5VYKlPkVB70IajbOyyHK/N3dQjVmnUDJsRENlPkw89nv3XNbmEqsAT4KWcvlv2NunfEP6JrlO5frfNAhDZmsrQ=="],
    ),
    (
        "api_key",
        "Endpoint=sb://rp-bus.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=hFZsFLmyjoHw73/4xckGD+lKQjzyYIxWC77yFOPWNGQ=",
        ["hFZsFLmyjoHw73/4xckGD+lKQjzyYIxWC77yFOPWNGQ="],
    ),
    (
        "api_key",
        "aws_access_key_id = AKIA7JUH5A6S1FAHTCXX\naws_secret_access_key = 3B9w+Q/0lMUA9wrnFZlPLQuEZpPQh1SigvyeROnp",
        ["AKIA7JUH5A6S1FAHTCXX", "3B9w+Q/0lMUA9wrnFZlPLQuEZpPQh1SigvyeROnp"],
    ),
    (
        "api_key",
        'export AWS_SECRET_ACCESS_KEY="hcwvRErpWG18ePYq6Aq/berGFlly6Ek2X83aT4iX"',
        ["hcwvRErpWG18ePYq6Aq/berGFlly6Ek2X83aT4iX"],
    ),
    ("api_key", "temporary credentials ASIA8KEQN8HRGT8GUSHC expired", ["ASIA8KEQN8HRGT8GUSHC"]),
    (
        "api_key",
        '{"type": "service_account", "project_id": "rp-qa", "private_key_id": "c0ca2a8b06633b28458e030b99012e4c792c16e3", "client_email": "ci@rp-qa.iam.gserviceaccount.com"}',
        ["c0ca2a8b06633b28458e030b99012e4c792c16e3"],
    ),
    (
        "api_key",
        "maps call used key=AIzax2Aly21R-Clj-fbWdyK9g3NwQrScFDu25VG",
        ["AIzax2Aly21R-Clj-fbWdyK9g3NwQrScFDu25VG"],
    ),
    ("api_key", "db password: 4eibWiFNDTPUIe", ["4eibWiFNDTPUIe"]),
    ("api_key", "DB_PASS=IeShMFJ2oo5t7t85dNxR in the compose file", ["IeShMFJ2oo5t7t85dNxR"]),
    (
        "api_key",
        "client_secret = '5PjYecwJS61cEtRJJ0lIoMqd929lBhbBfMIaklHI'",
        ["5PjYecwJS61cEtRJJ0lIoMqd929lBhbBfMIaklHI"],
    ),
    (
        "api_key",
        "the runner printed GXEPBQcHGWAJfTr5CdYunVNLVJ4wyk3XsKYbY7WpUNr5pYPm before failing",
        ["GXEPBQcHGWAJfTr5CdYunVNLVJ4wyk3XsKYbY7WpUNr5pYPm"],
    ),
    ("api_key", "clone with ghp_6qdNFDwmKtZJTMhxZZPqWcz1HjpyFjI9Vwtw", ["ghp_6qdNFDwmKtZJTMhxZZPqWcz1HjpyFjI9Vwtw"]),
    (
        "api_key",
        "sendgrid 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",
        ["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"],
    ),
    (
        "api_key",
        "bot token xoxb-138362496352-6343061923849-9gy1pjx5aa0c253nxs0xcpj7",
        ["xoxb-138362496352-6343061923849-9gy1pjx5aa0c253nxs0xcpj7"],
    ),
    (
        "api_key",
        "telegram bot 4851517363:SRCbwLFLFRhB4wQfcAF_JF76cNcsqDoIkhU",
        ["4851517363:SRCbwLFLFRhB4wQfcAF_JF76cNcsqDoIkhU"],
    ),
    ("api_key", "mailchimp myg5bu7zvzfp7ljtg8u3jz2j5ra8qqjg-us14", ["myg5bu7zvzfp7ljtg8u3jz2j5ra8qqjg-us14"]),
    (
        "api_key",
        'Authorization: "Bearer gcSAQyqRfkDEW8kCiVID2Su9cQaHE3fvQ1Gmhnqz"',
        ["gcSAQyqRfkDEW8kCiVID2Su9cQaHE3fvQ1Gmhnqz"],
    ),
    (
        "private_key",
        "deploy key:\n-----BEGIN RSA PRIVATE KEY-----\nznZ/LJg2YwUwo+zEIrQ36GLY/xNYKDyV/K7GAVciH1obUaujCoQ+9YRdhDExZoBN\n58cFE8V5p5mIsBoWzYuXQr29GbzvTmy3qHaDFiSP1Bnx4aub+WqKbKVcIgZPek0a\nRrNawKpj/j88hHgmCEiqF0HKnYfhgIVUJe3Od4/EOtYrR48jHRLXtIlp/33n6ot0\nUyqgbyh1uzVPNHY3RIEDGR1wtGBXrGJlnsXuIlpjMMQnWLAgXBny+QktHsfx+JJ0\n5xyxogT7drIe9BgeR4rEO76TPz3+b3yfpO+IRFbXf1i3foIU3pWCH2AIceL4baEk\n2J8eIcuyNv5RgnXWWs9R327KI1FUjITwOxwfp8EK68GsD2eqrc9D7kKePmnsjrK8\nfpqD/jw/3OyB38IneB99Ajt1+u306xHYesI30IRTFLmVkDoTo/1vgNgzQweNHavo\na8w3zmjNzfpycmQSGqudDjv/L+lZbwBVQwOdpVCAM40MdkA4Ed5shZ33O2Ths8j+\ngcvV34/+qaQel+IUz3QRp0wkXNtgSIrp+aHiV3JGi3n1tfigWv5FvxcexqwEdpy+\n2VhSfsMxzm4mMkf4jCW59H1/brNN7prw+pL68JQaPsEs5kHhw7JZRrBKEoxibhOk\nTT8CMiJtbguYDdWAwB3GIJLFZKd/mZHF4kDIxIz23cK4hVKxaWa3Ls3au+1yNsqS\nGxv/ZBB3CkaVNmCX7C4u91I1jo6S5G/w1pSyEKBxucDgg6N1VcHq4Z082moqT7u8\nT3Yjbrqe8BlxG6ZZisz1pXx0buR7tcd5R7ZBJZFjVD6V3wEvTc5MYb4CBkuiRj1O\nTTik7bgCuXtDPJBDBMsx5lLKTjeOPc36h2CGbKiOHduxT088o7p62iLedsh5/9NM\nUsyNdzw0yEaCFbZdkIUgJ9yLcC8YEMw5EL8vDNbU1HXnuL7beL1wE6kPsOsHEO5w\nanEUcy7lHTglM/OmkvNJ9r4T2SoUb5jUV2cAkAeCC2Ptc5wL6ASCDb5rw5yQ37Z8\naL5juaO3pTUmhCKojuh+DzX1yXmrzZP4DcQFmnrTr9SL/65mElMHo7yBC3VaccbZ\npVHk036eG5Gv8nQvjiGV28LiV/OBZ7AODT1rnGJnD19xFVXqJXt1ivZ6+ip0s75a\njdgE1wZcPpKgVExupuyeQDr6LlPT7vB49iAsGm0dFoTsab0xtNItfYoaajZOEvdk\nk/J+2nnoZ5VjVaWmD6FFWvir0SfMpAkbGqsdPGkZhvzjajXvYFVOxtx/Iuy7ZbPf\neQblGzBIFza7DxbTrDZDLsAi4frgMEcmvxEpJamGBW5+Z/FMzffQWfateMkiFylj\n7PVnI/dVCSPIxpPTRxtIStYt56NgGI28+kmo1QU/rDxL+2tiuTS3mqgxcgod9KIu\nwKQsVkj4Aj02mcXqryzIJmtiQP4svz9rO68/xkelJTjWoZIPooOckCs1RevWM3Om\nIp3z1B7887y5HblbMrzE/5qQZTiMh7ylTLOwmpzpITrPkL2X0ZxOfiy5L1ceQpJ0\nkrJmOa6TPYHGPsGLSVjQWV3w+Fwcb72aMTJmN/F8v+WJRSZ9EFI=\n-----END RSA PRIVATE KEY-----\nrotate it",
        [
            "znZ/LJg2YwUwo+zEIrQ36GLY/xNYKDyV/K7GAVciH1obUaujCoQ+9YRdhDExZoBN",
            "a8w3zmjNzfpycmQSGqudDjv/L+lZbwBVQwOdpVCAM40MdkA4Ed5shZ33O2Ths8j+",
            "krJmOa6TPYHGPsGLSVjQWV3w+Fwcb72aMTJmN/F8v+WJRSZ9EFI=",
        ],
    ),
    (
        "private_key",
        "-----BEGIN EC PRIVATE KEY-----\nXfY1rTsUMT1bUTWWFLDaFshbTGPQ87eXIkAk3h5MSYPLqDPfXrRtEXh5CmrdZDaZ\nAMq4aEzfgru7AuArHoExBYXL5YqPLPaGSuhHQWKUmC5Vb7KTRlR2VwAQflyMRlSY\na5wEHoqqLkhbXc5yzSwuyuvD4bDZ6bXtSg==\n-----END EC PRIVATE KEY-----",
        ["XfY1rTsUMT1bUTWWFLDaFshbTGPQ87eXIkAk3h5MSYPLqDPfXrRtEXh5CmrdZDaZ", "a5wEHoqqLkhbXc5yzSwuyuvD4bDZ6bXtSg=="],
    ),
    (
        "private_key",
        "id_ed25519 from the runner: -----BEGIN OPENSSH PRIVATE KEY-----\nYGoL80VaCYogFdK//pKr3KOvCt3AytUBjXB5cs701skVvTayo8d352HhsJs9ouyHR4R4Zh\n20zyUzCdXeqbVwArYq+38fI5Uhe9T5PAPQtM+9JcWJcY7dGsNrqi00R9FGcIJsMIZwDZjk\n0wm9u47Odje1ivYa84P8StLRH3m/cMC1cq4fwjzGqDXOqUtwGSayx8VxQB2yZhhoBG3wP2\nOvvJ/4dRqb4i6bXzmrprtziv3cQaxZkVOg08e1G6zuvFMiA0VVz7qVRCGVITnH4fnz61Qz\nFVGiF37h3ujnnkIlj4zQ6JpTkvUIVD4HwkB0jzx0xzdF21Tw/WlWe2vh/kK11fGVLZf7Go\ng3xGAmHYb870le3qdDxtB4B6IfZQjj1U0U/0kfA3PSAXixZwWuVvErKKjsaYoWZ6xyaYMI\nE5fqtqS3hoPmMezdkMwjP+QmfEXyrc3owUJ4saFU30mlj387QayoRiMIL+7FmNnEEAoKk/\ncRrCU5PCr/FXBjiaPca5pOir9JJqH/qGy7JASESV7I0w==\n-----END OPENSSH PRIVATE KEY-----",
        [
            "YGoL80VaCYogFdK//pKr3KOvCt3AytUBjXB5cs701skVvTayo8d352HhsJs9ouyHR4R4Zh",
            "OvvJ/4dRqb4i6bXzmrprtziv3cQaxZkVOg08e1G6zuvFMiA0VVz7qVRCGVITnH4fnz61Qz",
            "cRrCU5PCr/FXBjiaPca5pOir9JJqH/qGy7JASESV7I0w==",
        ],
    ),
    (
        "private_key",
        '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nSAAt4A5VhS8r5DlMLSymrZADBU7ggA0j45j5VMJNK97MeK9FOVLcCCG4sF3Dk1D8\\nyWNuRCBHwN8X3PxtS4OEF8HLIjVuAVhd3SjltY6eBimGNBF5t3yvGBrC6LhpcGaA\\n2ecXwPpjZhMNuZVsiPVnMN/Y48BMFaSbwsfuGopr47dTWd22MROlgUncmA0fTuUS\\ntAgcqE6nY9iHxg+ZHmDMmCsNV1JEjEqGydaf6PUWu+ZJoXOni+rlFbs0TIWWqnZ6\\nokL0kEYF19VMPAgZZ07LMKdNZHzQFS7gO6tzTskrMawYlwjwdcWyoX3PgGsFLwGy\\ngAlUhZCjYww7xzbehSJRw9wLad6j1YrlnkTzeLYxApogZadO0iZt6Sx8Z8IoOjPS\\nfmDFYMKmbnR/SgoO83XTg1zvGj58aJQSWsiBtqE/OSOlc/6zFjpbxuLNLuiEypEX\\nq36eTfra9VC+UTboUNenB1FpzPTJflxL/gCx2SAcSsOjn58gABjWXzZ0mISaHqaF\\nlI4JhsKHzy4GdOovrIF0i0u+X8IF8vn2tbBejNbEAVhjvafjBCALO2Hx/GV9SAV6\\nIKXCkIzsxjvd1D43g7onLCnpKmf92iqba5NjckoRcBMw/dVH9df9+ChlcG/YP/Cp\\n49nnyjm4vydfiCpXeRrRTi3tYmE+qWn+Jcg9ndEu0H+jw2K1TIa9HMK6jmsTKR4f\\nCgXfqviWN5YO37PwqG0LKgRqlk71zzls932+7pnGQC60WBAHLK1j6MNkU5fBqXAL\\nVFkHFoamh/7NmseIAXjm6RYdlAD/MYrIOdzxkHE0QfCBrernvZ9alZqdDNki5MpN\\nIp4DnEQtmdX5+Nnp2CfHXXasS+LqOJixq3D1+44dJt8J8w7Hjg5bBx2bwpNiQqyu\\nLsDpWHg75vpw1j/XwGlhdY2LQweu0BAjvSveAiAX8q2/6b1jWJaSXbvh/XjsEZf7\\ndy5afJ8wF2gxJd2YfyiepbFYBI/JP38aQIKo337jjTl/PjyMmF8Jz9vAm3fc8RLw\\nHiwuS4ptewdz6Fp3Igqy3+SP3/4OLO5t6Ze+MIGNiMTtrPMnWIHhgXrwP8racyNu\\nLPNna+tDL2wMBzvJnm5LgO4A/S4b27N9Sy1HxXNTF/uWZ+tBS0+ut6JhIMhtMQlb\\nu/ynZ0DlSaHG9s3QaxhxIjgZFMjyBofRvsfkkaP19bfEF8FskkvZAJulordCEefK\\nHoAa2alGN6/zSBscsIQxvnIVHRDXyQVDe/kYHMtJmoC5boldgaGqUVHUF3E4tarH\\nfP9+bsefO9TukHMeXHGh7hpKKlC2RYJGb5/CMoROwaafj4SA9SUa1loduX+7a8r4\\ni+tD0CPoU172tYKc43jyicc44jPbobJFK6I1wFzgKpHsunE37rO0WC60HPh/Posw\\nqiu36NRzM4KQwohWP9Q+9JyK2avS/I6JshYSXu1qWW4wXSeWj6Q/WEPnlzF2G2VY\\nBeS7MJ3egbVjB2vYzpZ0E+D+J5d+swDOIBBLQcy5ZyKJkxCKKYvHFoOtdGJBax2N\\nq8hPJIbHoMkqEbPxC/kOAOs8zcQDVILBRrRy9NhJoB/14QDAfFtIt2aXVi5Y1jmn\\ndCkg3WXB/y07d5kIT6st6Q==\\n-----END PRIVATE KEY-----\\n", "client_id": "1234"}',
        [
            "SAAt4A5VhS8r5DlMLSymrZADBU7ggA0j45j5VMJNK97MeK9FOVLcCCG4sF3Dk1D8",
            "gAlUhZCjYww7xzbehSJRw9wLad6j1YrlnkTzeLYxApogZadO0iZt6Sx8Z8IoOjPS",
            "dCkg3WXB/y07d5kIT6st6Q==",
        ],
    ),
    (
        "private_key",
        "truncated paste:\n-----BEGIN PRIVATE KEY-----\nTTXN2uzrA7m0szizGdDI6Az8qjxjj5uJ85Dko8WD8Dp6PespQ9BapNUVihwZ3P6U\nmEsgtWD61vTnnA3mD+w9FOgymfgNURp5Z+zMO3IAm9Khdj07JT28eejRaMSYC0EI\nMJi/0A2XsIbGfUQ0yG+k2yvFwwdSo3DZlym4TpTxowOP74lmKTFgBJOB22WlcD1G\nTotkO4z0LEztimyIJ8STSbiRa0MuoRIzqsKwvyPoKvS/9dk3RTdOyMVsRtIylU1n\ntBqlBiylzwYsUA0SwXiWCDfpL4UFrw1xcZCRhkafqU5hj67PIrNGADQd5XRZyJsb\nAdf0/5Q7130yg7I4jHIpMip2a+U9dp9kmya1fgzyq8ovGFyPdHV941BhpsrgFwiF",
        [
            "TTXN2uzrA7m0szizGdDI6Az8qjxjj5uJ85Dko8WD8Dp6PespQ9BapNUVihwZ3P6U",
            "Adf0/5Q7130yg7I4jHIpMip2a+U9dp9kmya1fgzyq8ovGFyPdHV941BhpsrgFwiF",
        ],
    ),
]
ATTACK_FORMATS += [
    ("national_id", "Steuer-ID 39 170 342 364 of the tester", ["39 170 342 364"]),
    ("national_id", "IdNr: 41372159010", ["41372159010"]),
    ("national_id", "numéro de sécurité sociale 1 85 05 78 006 084 91", ["1 85 05 78 006 084 91"]),
    ("national_id", "NIR 293027511612329 on the form", ["293027511612329"]),
    ("national_id", "DNI 48372910T del cliente", ["48372910T"]),
    ("national_id", "DNI 71234569-G", ["71234569-G"]),
    ("national_id", "NIE Y3456789H", ["Y3456789H"]),
    ("national_id", "codice fiscale RSSMRA85T10A562S", ["RSSMRA85T10A562S"]),
    ("national_id", "BSN 139624594 in the import row", ["139624594"]),
    ("national_id", "PESEL 85073012341", ["85073012341"]),
    ("national_id", "customer 92031519875 (PESEL)", ["92031519875"]),
    ("national_id", "rijksregisternummer 85.07.30-033.28", ["85.07.30-033.28"]),
    ("national_id", "AHV 756.1234.5678.97", ["756.1234.5678.97"]),
    ("national_id", "SSN 536-22-4719 shown in the error page", ["536-22-4719"]),
    ("national_id", "personnummer 850709-9805", ["850709-9805"]),
    ("national_id", "henkilötunnus 131052-308T", ["131052-308T"]),
    ("national_id", "fødselsnummer 15078508474", ["15078508474"]),
    ("national_id", "CPR 211062-5629", ["211062-5629"]),
    ("phone", "Rückruf unter 030 1234567 bitte", ["030 1234567"]),
    ("phone", "Handy 0151 23456789", ["0151 23456789"]),
    ("phone", "Büro München 089 12345678", ["089 12345678"]),
    ("phone", "appeler le 01 23 45 67 89", ["01 23 45 67 89"]),
    ("phone", "portable 06 12 34 56 78", ["06 12 34 56 78"]),
    ("phone", "mobile 07700 900123", ["07700 900123"]),
    ("phone", "bel 020 123 4567", ["020 123 4567"]),
    ("phone", "from abroad 0049 30 1234567", ["0049 30 1234567"]),
    ("phone", "+49 (0)30 1234567 is the hotline", ["+49 (0)30 1234567", "30 1234567"]),
    (
        "email",
        "GET /api/v1/users?email=jane.doe%40example.com&page=2",
        ["jane.doe%40example.com", "jane.doe@example.com", "jane.doe"],
    ),
    (
        "email",
        "redirect=https%3A%2F%2Fapp.example.com%2F%3Fuser%3Dmax.mustermann%2540beispiel.de",
        ["max.mustermann", "mustermann%2540beispiel.de"],
    ),
    ("email", "filter: owner=o.brien%40corp-mail.example.io", ["o.brien%40corp-mail.example.io", "o.brien"]),
    ("email", "Gemeldet von jürgen.müller@beispiel.de", ["jürgen.müller@beispiel.de", "jürgen", "müller"]),
    ("email", "Gemeldet von ju\u0308rgen.mu\u0308ller@beispiel.de", ["ju\u0308rgen", "mu\u0308ller"]),
    ("email", "signalé par françois.lefèvre@exemple.fr", ["françois.lefèvre@exemple.fr", "françois", "lefèvre"]),
    ("email", "owner josé.garcía@correo.example.es", ["josé.garcía@correo.example.es", "josé"]),
    ("mac", "device 00:1a:2b:3c:4d:5e dropped", ["00:1a:2b:3c:4d:5e"]),
    ("mac", "MAC 00-1A-2B-3C-4D-5F on the lab printer", ["00-1A-2B-3C-4D-5F"]),
    ("mac", "switch port learned 001a.2b3c.4d60", ["001a.2b3c.4d60"]),
    ("mac", "hwaddr=A4:83:E7:12:9B:0C;", ["A4:83:E7:12:9B:0C"]),
    ("iban", "Erstattung an DE35 3704 0044 0532 0130 99", ["DE35 3704 0044 0532 0130 99"]),
]

ATTACK_FORMATS.append(
    (
        "private_key",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQIq3F8xKmZ2aACAggA\nMAwGCCqGSIb3DQIJBQAw\n-----END ENCRYPTED PRIVATE KEY-----",
        ["MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQIq3F8xKmZ2aACAggA", "MAwGCCqGSIb3DQIJBQAw"],
    )
)

CORPUS += ATTACK_FORMATS

# Must survive redaction unchanged: not personal, and what makes a prompt useful.
MUST_SURVIVE = [
    "Version 10.4.2.1 of the agent",
    "upgraded to version 2.3.4.5 yesterday",
    "build 1.0.0.7 on the runner",
    "v10.4.2.1-rc1",
    "User-Agent Chrome/120.0.6099.109",
    "run 3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f failed",
    "RUN-ID 8D5C2E1A-4B3F-4C6D-9E8F-0A1B2C3D4E5F",
    "ABC-123 is blocked by PROJ-4711",
    "see JIRA-20261 and QA-7",
    "localhost:8080 refused the connection",
    "postgres on port 5432, redis on 6379",
    "took 1h 30m 12s",
    "timeout PT15M exceeded",
    "elapsed 00:12:30",
    "p95 1500 ms, p99 2300 ms",
    "executed 2026-11-25 10:30:00",
    "due 25.11.2026",
    "started 01.12.2026 at 09:00",
    "on 11/25/2026",
    "at 2026-11-25T10:30:00Z",
    "processed 12345678 rows in 42 s",
    "build 20261125 passed",
    "order 4711 of 5000",
    "epoch 1733050000",
    "1,234,567 events",
    "total 123456789 bytes",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "TestCheckoutFlowHandlesDeclinedCards failed",
    "APEXController threw",
    "AccountKeyRotationService.rotate()",
    "password_reset_confirm view",
    "get_secret_manager_client() returned None",
    "SECRET_KEY_FALLBACKS is empty",
    "MAX_TOKENS=700",
    "the password field must be masked",
    "passed: 1100",
    "release_candidate: RC-2026.11.2",
    "com.example.checkout.PaymentGatewayClientTest",
    "ratio 3:2, step 12:30",
    "test_checkout_handles_declined_cards_with_retry_v2",
]


def corpus_scores() -> dict:
    """Recall (labelled snippets fully redacted) and over-redaction (must-survive items changed) of `redact()`."""
    from ai_assist.redaction import PLACEHOLDERS, redact

    missed = []
    for kind, text, secrets in CORPUS:
        result = redact(text, names=tuple(NAMES)).text
        if (
            any(secret.lower() in result.lower() for secret in secrets)
            or PLACEHOLDERS.get(kind, "[REDACTED_") not in result
        ):
            missed.append((kind, text, result))
    survivors = MUST_SURVIVE + NEGATIVES
    damaged = [(text, redact(text, names=tuple(NAMES)).text) for text in survivors]
    damaged = [(text, result) for text, result in damaged if text != result]
    return {
        "recall": 1 - len(missed) / len(CORPUS),
        "over_redaction": len(damaged) / len(survivors),
        "snippets": len(CORPUS),
        "survivors": len(survivors),
        "missed": missed,
        "damaged": damaged,
    }
