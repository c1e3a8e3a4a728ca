using System.Reflection;
using System.Text;

namespace Cora.Tests;

/// <summary>
/// The public surface of both packages, listed in <c>PublicApi.txt</c> beside this file: a change to it fails here until the list
/// is regenerated on purpose (<c>CORA_UPDATE_API=1 dotnet test --filter PublicApi</c>) and the diff is part of the commit.
/// </summary>
[TestClass]
public class PublicApiTests
{
    private static string ListPath => Path.Combine(TestPaths.RepoRoot, "tests", "Cora.Tests", "Packaging", "PublicApi.txt");

    [TestMethod]
    public void ThePublicSurfaceIsTheOneListedInPublicApiTxt()
    {
        string actual = Describe(typeof(Microsoft.ML.Cora.CoraModel).Assembly, typeof(Microsoft.ML.Cora.Estimators.CoraTransformer).Assembly);
        if (Environment.GetEnvironmentVariable("CORA_UPDATE_API") == "1") File.WriteAllText(ListPath, actual);
        string expected = File.Exists(ListPath) ? File.ReadAllText(ListPath) : "";
        if (expected == actual) return;
        var want = expected.Split('\n').ToHashSet();
        var have = actual.Split('\n').ToHashSet();
        var added = actual.Split('\n').Where(l => !want.Contains(l)).Take(30);
        var removed = expected.Split('\n').Where(l => !have.Contains(l)).Take(30);
        Assert.Fail("The public API changed. If that is deliberate, run CORA_UPDATE_API=1 dotnet test --filter PublicApi and commit PublicApi.txt.\n" +
                    "added:\n  " + string.Join("\n  ", added) + "\nremoved:\n  " + string.Join("\n  ", removed));
    }

    [TestMethod]
    public void TheListNamesEveryPackagedAssemblyAndNoInternalNamespace()
    {
        string list = Describe(typeof(Microsoft.ML.Cora.CoraModel).Assembly, typeof(Microsoft.ML.Cora.Estimators.CoraTransformer).Assembly);
        StringAssert.Contains(list, "[Cora.Estimators] sealed class Microsoft.ML.Cora.Estimators.CoraTrainer\n");
        StringAssert.Contains(list, "[Microsoft.ML.Cora] sealed class Microsoft.ML.Cora.CoraModel");
        Assert.IsFalse(list.Contains("MlNetInternals"), "ML.NET's internals stay internal");
    }

    private static string Describe(params Assembly[] assemblies)
    {
        var sb = new StringBuilder();
        foreach (var asm in assemblies)
            foreach (var t in asm.GetExportedTypes().OrderBy(t => t.FullName, StringComparer.Ordinal))
            {
                sb.Append('[').Append(asm.GetName().Name).Append("] ").Append(Kind(t)).Append(' ').Append(Name(t));
                if (t.BaseType is { } b && b != typeof(object) && b != typeof(ValueType) && b != typeof(Enum) && !t.IsEnum) sb.Append(" : ").Append(Name(b));
                sb.Append('\n');
                var members = t.GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
                    .Select(Member).Where(m => m is not null).OrderBy(m => m, StringComparer.Ordinal);
                foreach (var m in members) sb.Append("  ").Append(m).Append('\n');
            }
        return sb.ToString();
    }

    private static string Kind(Type t) =>
        t.IsEnum ? "enum" : t.IsInterface ? "interface" : t.IsValueType ? "struct" : typeof(Delegate).IsAssignableFrom(t) ? "delegate"
        : t.IsAbstract && t.IsSealed ? "static class" : t.IsAbstract ? "abstract class" : t.IsSealed ? "sealed class" : "class";

    private static string? Member(MemberInfo m) => m switch
    {
        ConstructorInfo c => $"ctor({Parameters(c)})",
        MethodInfo x when x.IsSpecialName && !x.Name.StartsWith("op_", StringComparison.Ordinal) => null,   // accessors: listed with their property or event
        MethodInfo x => $"{(x.IsStatic ? "static " : "")}{Name(x.ReturnType)} {x.Name}{(x.IsGenericMethod ? "<" + string.Join(", ", x.GetGenericArguments().Select(Name)) + ">" : "")}({Parameters(x)})",
        PropertyInfo p => $"{(p.GetMethod?.IsStatic == true ? "static " : "")}{Name(p.PropertyType)} {p.Name} {{{(p.GetMethod?.IsPublic == true ? " get;" : "")}{(p.SetMethod?.IsPublic == true ? (IsInitOnly(p.SetMethod) ? " init;" : " set;") : "")} }}",
        FieldInfo f when f.DeclaringType!.IsEnum => f.IsSpecialName ? null : $"{f.Name} = {Convert.ToInt64(f.GetRawConstantValue(), System.Globalization.CultureInfo.InvariantCulture)}",
        FieldInfo f => $"{(f.IsLiteral ? "const " : f.IsStatic ? "static " : "")}{(f.IsInitOnly ? "readonly " : "")}{Name(f.FieldType)} {f.Name}",
        EventInfo e => $"event {Name(e.EventHandlerType!)} {e.Name}",
        Type => null,                                                   // nested types are listed as types of their own
        _ => m.ToString(),
    };

    private static bool IsInitOnly(MethodInfo set) => set.ReturnParameter.GetRequiredCustomModifiers().Any(t => t.Name == "IsExternalInit");

    private static string Parameters(MethodBase m) => string.Join(", ", m.GetParameters().Select(p =>
        (p.IsOut ? "out " : p.ParameterType.IsByRef ? "ref " : "") + Name(p.ParameterType) + " " + p.Name + (p.HasDefaultValue ? " = " + (p.DefaultValue ?? "null") : "")));

    private static string Name(Type t)
    {
        if (t.IsByRef) return Name(t.GetElementType()!);
        if (t.IsArray) return Name(t.GetElementType()!) + "[" + new string(',', t.GetArrayRank() - 1) + "]";
        if (t.IsGenericParameter) return t.Name;
        if (Nullable.GetUnderlyingType(t) is { } u) return Name(u) + "?";
        string name = t.IsNested ? Name(t.DeclaringType!) + "." + t.Name : (t.Namespace is { } ns ? ns + "." : "") + t.Name;
        if (!t.IsGenericType) return name;
        int tick = name.IndexOf('`');
        var args = t.GetGenericArguments();
        if (t.IsNested && t.DeclaringType!.IsGenericType) args = args.Skip(t.DeclaringType.GetGenericArguments().Length).ToArray();
        return (tick >= 0 ? name[..tick] : name) + (args.Length > 0 ? "<" + string.Join(", ", args.Select(Name)) + ">" : "");
    }
}
