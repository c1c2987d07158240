module LLGBM.Tests.ByteLevelAlphabetTests

open System.Collections.Generic
open Expecto
open LLGBM.Text

[<Tests>]
let tests =
    testList "ByteLevelAlphabet" [
        test "ToChar: printable bytes stand for themselves, the others count up from U+0100" {
            // GPT-2's bytes_to_unicode: '!'..'~', 0xA1..0xAC and 0xAE..0xFF keep their code point; the 68 others, in
            // increasing order, get 0x100 + n: 0x00..0x20 are n = 0..32, 0x7F..0xA0 are n = 33..66, 0xAD is n = 67.
            let expected = [
                0x21uy, '!'
                0x41uy, 'A'
                0x7Euy, '~'
                0xA1uy, '¡'
                0xACuy, '¬'
                0xAEuy, '®'
                0xFFuy, 'ÿ'
                0x00uy, '\u0100' // n = 0
                0x0Auy, 'Ċ' // newline, n = 10
                0x0Duy, 'č' // carriage return, n = 13
                0x20uy, 'Ġ' // space, n = 32
                0x7Fuy, 'ġ' // n = 33
                0x80uy, 'Ģ' // n = 34
                0x99uy, 'Ļ' // n = 33 + (0x99 - 0x7F) = 59
                0xA0uy, 'ł' // no-break space's second byte, n = 66
                0xADuy, 'Ń' // soft hyphen, n = 67, the last
            ]

            for (b, c) in expected do
                Expect.equal (ByteLevelAlphabet.ToChar b) c $"byte 0x{b:X2}"
        }
        test "the table is a bijection between the 256 bytes and 256 symbols" {
            let symbols = [ for b in 0..255 -> ByteLevelAlphabet.ToChar(byte b) ]
            Expect.equal (List.distinct symbols).Length 256 "distinct"

            for b in 0..255 do
                let ok, back = ByteLevelAlphabet.TryGetByte(ByteLevelAlphabet.ToChar(byte b))
                Expect.isTrue ok $"0x{b:X2} found"
                Expect.equal back (byte b) $"0x{b:X2} back"

            Expect.isFalse (fst (ByteLevelAlphabet.TryGetByte ' ')) "a raw space is no symbol"
            Expect.isFalse (fst (ByteLevelAlphabet.TryGetByte '\u0144')) "U+0144 lies past the 68 moved bytes"
        }
        test "EncodeText writes UTF-8 bytes as symbols; TryDecode reads them back" {
            // ’ is E2 80 99: â (0xE2 is printable), Ģ (0x80), Ļ (0x99); then s.
            Expect.equal (ByteLevelAlphabet.EncodeText "’s") "âĢĻs" "right single quote"
            Expect.equal (ByteLevelAlphabet.EncodeText " Hello\n") "ĠHelloĊ" "space and newline"
            let bytes = List<byte>()
            Expect.isTrue (ByteLevelAlphabet.TryDecode("âĢĻs", bytes)) "decodes"
            Expect.sequenceEqual bytes [ 0xE2uy; 0x80uy; 0x99uy; byte 's' ] "bytes"
            Expect.isFalse (ByteLevelAlphabet.TryDecode("a b", bytes)) "a raw space is refused"
            Expect.equal bytes.Count 4 "nothing appended on refusal"
        }
    ]
