module LLGBM.Tests.Qwen2PreTokenizerTests

open Expecto
open LLGBM.Text

/// The expected pieces are worked out by hand from the pattern
/// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
/// (alternatives A1..A7 in order; the first that matches at the current position wins, greedy parts give back).
let private cases = [
    // A3 takes one number at a time.
    "12345", [ "1"; "2"; "3"; "4"; "5" ]
    // A2 takes "I"; at "'m" A1 matches.
    "I'm", [ "I"; "'m" ]
    // A1 is case-insensitive: "'LL".
    "they'LL", [ "they"; "'LL" ]
    "don't", [ "don"; "'t" ]
    "we've", [ "we"; "'ve" ]
    // A1 matches "'s" even when more letters follow; A2 then takes the rest.
    "'sure", [ "'s"; "ure" ]
    // At the first space A2 fails (the next character is a space, not a letter), A4 fails (no symbol), A5 fails
    // (no newline); A6 takes the run of two spaces less the last one, which A2 then joins to "b".
    "a  b", [ "a"; " "; " b" ]
    // From "\n\n b": A5 takes white space up to the last newline; " b" is A2.
    "a\n\n b", [ "a"; "\n\n"; " b" ]
    // Trailing white space: A6 takes the whole run (nothing follows it).
    "hi   ", [ "hi"; "   " ]
    "hi  there  ", [ "hi"; " "; " there"; "  " ]
    // A4: an optional space and a run of symbols.
    "Hi!!! ok", [ "Hi"; "!!!"; " ok" ]
    "x += 1", [ "x"; " +="; " "; "1" ]
    // A4 then takes the newlines that follow the symbols.
    "end.\n\nNext", [ "end"; ".\n\n"; "Next" ]
    "a.\r\n b", [ "a"; ".\r\n"; " b" ]
    // A2's optional first character: any symbol or white space but a newline.
    "$abc", [ "$abc" ]
    "\tword", [ "\tword" ]
    "\nword", [ "\n"; "word" ]
    "$5", [ "$"; "5" ]
    // A5 stops at the last newline of the run; A6 and A2 do the rest.
    "  \n  x", [ "  \n"; " "; " x" ]
    // Outside the Basic Multilingual Plane: math letters are letters (A2), emoji are symbols (A4).
    "𝐀𝐁 😀😀 a", [ "𝐀𝐁"; " 😀😀"; " a" ]
    "", []
]

[<Tests>]
let tests =
    testList "Qwen2PreTokenizer" [
        for (text, pieces) in cases do
            test $"Split %A{text}" { Expect.sequenceEqual (Qwen2PreTokenizer.Split text) pieces "pieces" }

        test "Ranges are contiguous offsets into the text, as PreTokenize reports them" {
            let text = "I'm 12 ok\n"
            let ranges = Qwen2PreTokenizer.Instance.PreTokenize(text) |> List.ofSeq
            Expect.equal ranges [ (0, 1); (1, 2); (3, 1); (4, 1); (5, 1); (6, 3); (9, 1) ] "offsets and lengths"
        }
        test "Pattern is the regex of Qwen2's tokenizer.json" {
            Expect.equal
                Qwen2PreTokenizer.Pattern
                @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
                "Qwen2's pre-tokenizer pattern (tokenization_qwen2.py)"
        }
    ]
