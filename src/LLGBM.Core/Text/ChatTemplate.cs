using System.Text;

namespace LLGBM.Text;

/// <summary>One message of a conversation.</summary>
/// <param name="Role">Who speaks: <c>system</c>, <c>user</c> or <c>assistant</c> (any text is written as given).</param>
/// <param name="Content">What is said.</param>
public sealed record ChatMessage(string Role, string Content)
{
    /// <summary>A <c>system</c> message.</summary>
    public static ChatMessage System(string content) => new("system", content);

    /// <summary>A <c>user</c> message.</summary>
    public static ChatMessage User(string content) => new("user", content);

    /// <summary>An <c>assistant</c> message.</summary>
    public static ChatMessage Assistant(string content) => new("assistant", content);
}

/// <summary>
/// The ChatML format of Qwen2 chat models: each message is <c>&lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n</c>,
/// and a prompt for the model's answer ends with <see cref="GenerationPrompt"/>.
/// </summary>
public static class ChatTemplate
{
    /// <summary>The system text that Qwen2.5-Instruct's template inserts when a conversation has no system message.</summary>
    public const string Qwen25DefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

    /// <summary>What follows the conversation when the assistant is to answer next.</summary>
    public const string GenerationPrompt = SpecialTokenTexts.ImStart + "assistant\n";

    /// <summary>One message in ChatML: <c>&lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n</c>.</summary>
    public static string Message(string role, string content) =>
        $"{SpecialTokenTexts.ImStart}{role}\n{content}{SpecialTokenTexts.ImEnd}\n";

    /// <summary>
    /// The conversation in ChatML. When <paramref name="defaultSystem"/> is given and the first message is not a
    /// <c>system</c> message, a system message with that text comes first (pass <see cref="Qwen25DefaultSystem"/> to
    /// render as Qwen2.5-Instruct's template does); with <paramref name="addGenerationPrompt"/> the text ends with
    /// <see cref="GenerationPrompt"/>.
    /// </summary>
    public static string Render(IEnumerable<ChatMessage> messages, bool addGenerationPrompt = false, string? defaultSystem = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = messages.ToList();
        var text = new StringBuilder();
        if (defaultSystem is not null && (list.Count == 0 || list[0].Role != "system"))
            text.Append(Message("system", defaultSystem));
        foreach (var message in list)
            text.Append(Message(message.Role, message.Content));
        if (addGenerationPrompt)
            text.Append(GenerationPrompt);
        return text.ToString();
    }
}
