// Samples JMX attributes of a running JVM (the stack's broker or Connect) for bench.stall_bench, so a stall can be
// set beside the time the broker spent on each kind of request and the time Connect's producer spent committing.
// The JVM needs no JMX port: the sampler attaches (the JDK's attach API) and starts its local-only agent.
//
//   java bench/JmxSampler.java PID INTERVAL_MS 'domain:key=value,...#Attr,Attr' ...
//
// Each argument after the interval is an ObjectName pattern and the numeric attributes to read from every MBean it
// matches. Every INTERVAL_MS a line per value that changed since the last sample goes to stdout:
// "<epoch ms>\t<MBean name>\t<attribute>\t<value>". "ready" is printed once the first sample is taken.
import com.sun.tools.attach.VirtualMachine;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.management.Attribute;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public class JmxSampler {
    private static final long RESCAN_MS = 2000;

    public static void main(String[] args) throws Exception {
        VirtualMachine vm = VirtualMachine.attach(args[0]);
        String address = vm.startLocalManagementAgent();
        vm.detach();
        long interval = Long.parseLong(args[1]);
        try (JMXConnector connector = JMXConnectorFactory.connect(new JMXServiceURL(address))) {
            MBeanServerConnection server = connector.getMBeanServerConnection();
            Map<String, Object> last = new HashMap<>();
            Map<ObjectName, String[]> watched = new LinkedHashMap<>();
            long looked = 0;
            boolean first = true;
            while (true) {
                long now = System.currentTimeMillis();
                if (now - looked > RESCAN_MS) {  // an MBean can come later: a producer made when a task restarts
                    watched.clear();
                    for (int i = 2; i < args.length; i++) {
                        String[] query = args[i].split("#", 2);
                        for (ObjectName name : server.queryNames(new ObjectName(query[0]), null)) {
                            watched.put(name, query[1].split(","));
                        }
                    }
                    looked = now;
                }
                StringBuilder out = new StringBuilder();
                for (Map.Entry<ObjectName, String[]> entry : watched.entrySet()) {
                    for (Attribute attribute : server.getAttributes(entry.getKey(), entry.getValue()).asList()) {
                        String key = entry.getKey() + "\t" + attribute.getName();
                        if (!attribute.getValue().equals(last.put(key, attribute.getValue()))) {
                            out.append(now).append('\t').append(key).append('\t').append(attribute.getValue());
                            out.append('\n');
                        }
                    }
                }
                System.out.print(out);
                if (first) {
                    System.out.println("ready");
                    first = false;
                }
                System.out.flush();
                Thread.sleep(Math.max(1, interval - (System.currentTimeMillis() - now)));
            }
        }
    }
}
