using System.CommandLine;

namespace Cora.Cli;

/// <summary>A usage error found after parsing (bad value combinations, output paths): exit code 2.</summary>
internal sealed class UsageException : Exception
{
    public UsageException(string message) : base(message) { }
}
