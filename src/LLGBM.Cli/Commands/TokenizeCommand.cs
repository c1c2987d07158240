using System.CommandLine;
using System.Text.Json;
using LLGBM.Text;

namespace LLGBM.Cli.Commands;

/// <summary><c>llgbm tokenize</c>: the token ids of a text under a checkpoint's tokenizer.</summary>
public static class TokenizeCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Checkpoint directory with tokenizer.json, or vocab.json + merges.txt.", Required = true };
        var text = new Option<string?>("--text") { Description = "The text to tokenize." };
        var file = new Option<string?>("--file") { Description = "A UTF-8 file whose whole content is tokenized." };
        var json = new Option<bool>("--json") { Description = "Print {\"ids\": [...]}." };
        var command = new Command(
            "tokenize",
            "Prints the token ids of a text. No special tokens are added; special tokens written in the text (<|im_start|>, ...) are recognised.")
        {
            model, text, file, json,
        };
        CommandAction.Set(command, parse =>
        {
            var input = (parse.GetValue(text), parse.GetValue(file)) switch
            {
                ({ } t, null) => t,
                (null, { } f) => ReadFile(f),
                (null, null) => throw new LlgbmException("give the text to tokenize with --text TEXT or --file FILE."),
                _ => throw new LlgbmException("give either --text or --file, not both."),
            };
            var tokenizer = Tokenizers.Load(parse.GetValue(model)!);
            var ids = tokenizer.Encode(input);
            var output = CommandAction.Out(parse);
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new Dictionary<string, IReadOnlyList<int>> { ["ids"] = ids }));
                return 0;
            }
            output.WriteLine($"{ids.Count} tokens ({tokenizer.GetType().Name}, vocabulary {tokenizer.VocabSize})");
            foreach (var id in ids)
                output.WriteLine($"{id,8}  {Quote(tokenizer.Decode([id]))}");
            return 0;
        });
        return command;
    }

    static string ReadFile(string path)
    {
        if (!File.Exists(path))
            throw new LlgbmException($"--file {path}: no such file.");
        return TextFiles.ReadAllText(path);
    }

    /// <summary>A token's text as a JSON string literal, so that spaces, newlines and control characters show.</summary>
    static string Quote(string tokenText) =>
        JsonSerializer.Serialize(tokenText, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
}
